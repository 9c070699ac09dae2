"""Frozen releases: shards round trip, manifest/card schemas, verify, loader, resume, download."""
from __future__ import annotations

import functools
import json
import http.server
import re
import shutil
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from benchmark.errors import IntegrityError, UserError
from benchmark.files import atomic_write_json, read_json, sha256_file
from benchmark.metamers.twins import near_twin
from benchmark.release import load_frozen_sets, load_metamers, read_records, write_records
from benchmark.release.build import ReleaseBuilder, ReleaseConfig, base_records
from benchmark.release.card import read_card
from benchmark.release.download import download_release
from benchmark.release.manifest import read_manifest
from benchmark.release.records import GraphRecord
from benchmark.release.verify import verify_release

SHIPPED = Path(__file__).resolve().parents[1] / "data_cards" / "v1"

TINY = {
    "name": "metamer-bench-test", "release": "v0", "version": "0.0.1", "seeds": [0], "kinds": ["feature", "structure"],
    "train_seed": 0, "metamer_options": {"max_iterations": 8}, "train_options": {"epochs": 25, "patience": 25},
    "datasets": {"Cora": {"models": ["gcn"]}, "MUTAG": {"models": ["gin"]}},
}


def tiny_config(**changes) -> ReleaseConfig:
    config = ReleaseConfig(**{**TINY, **changes})
    config.check()
    return config


@pytest.fixture(scope="module")
def built(tmp_path_factory, cora, mutag):
    root = tmp_path_factory.mktemp("release") / "v0"
    ReleaseBuilder(tiny_config(), root, progress=False).build()
    return root


@pytest.fixture()
def release(built, tmp_path):
    """A private copy of the built release that a test may damage."""
    copy = tmp_path / "v0"
    shutil.copytree(built, copy)
    return copy


def _record(cora, rid, role, x, edge_index, parent=None) -> GraphRecord:
    n = cora.data.num_nodes
    return GraphRecord(id=rid, role=role, parent_id=parent, dataset="Cora", task="node", reference_model="gcn",
                       kind="feature", layer=1, seed=0, graph_index=0, x=x, edge_index=edge_index, y=cora.data.y,
                       target=torch.rand(n) < 0.3, valid=torch.rand(n) < 0.5, similarity=torch.rand(n),
                       stats={"rel_loss": 0.02, "curve": [1.0, 0.5]})


def test_shard_round_trip_is_exact_for_every_codec(tmp_path, cora):
    base = base_records(cora)[0]
    x, e = base.x, base.edge_index
    xf, _ = near_twin(x, e, "feature", 0)
    _, es = near_twin(x, e, "structure", 0)
    dense = torch.rand(x.size(0), 3)
    records = [_record(cora, "o", "original", x, e), _record(cora, "near-f", "near", xf, e, "o"),
               _record(cora, "near-s", "near", x, es, "o"), _record(cora, "dense", "far", dense, es.flip(0), "o"),
               _record(cora, "shuffled", "far", x[torch.randperm(x.size(0))], e[:, torch.randperm(e.size(1))], "o")]
    write_records(tmp_path / "s.parquet", records, {base.id: base})
    back = read_records(tmp_path / "s.parquet", {base.id: base})
    for a, b in zip(records, back):
        for name in ("x", "edge_index", "y", "target", "valid", "similarity"):
            assert torch.equal(getattr(a, name), getattr(b, name)), (a.id, name)
        assert (a.id, a.role, a.parent_id, a.stats) == (b.id, b.role, b.parent_id, b.stats)
    rows = pq.read_table(tmp_path / "s.parquet").to_pydict()
    # Only identical tensors are shared, by naming the record they equal; everything else is plain.
    # A pointer always names a record that stores the tensor itself: "o" points at the base, so do its children.
    assert rows["x_same_as"] == [base.id, None, base.id, None, None]
    assert rows["edge_index_same_as"] == [base.id, base.id, None, None, None]
    assert rows["edge_index"][3] == es.flip(0).tolist() and rows["x_values"][3] == dense[dense != 0].tolist()
    # The same records give the same bytes.
    write_records(tmp_path / "t.parquet", records, {base.id: base})
    assert sha256_file(tmp_path / "s.parquet") == sha256_file(tmp_path / "t.parquet")


def test_a_corrupt_shard_is_named(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(IntegrityError, match="bad.parquet"):
        read_records(tmp_path / "bad.parquet")


def test_built_release_loads_and_verifies(built):
    report = verify_release(built, progress=False)
    assert report.ok, report.problems
    assert report.checked_sets == 4
    sets = load_frozen_sets(built)
    assert {s.key for s in sets} == {"Cora/gcn/feature/L1", "Cora/gcn/structure/L1", "MUTAG/gin/feature/L2",
                                     "MUTAG/gin/structure/L2"}
    cora_feature = next(s for s in sets if s.key == "Cora/gcn/feature/L1")
    assert {v.role for v in cora_feature.variants} == {"metamer", "near", "far"}
    metamer = cora_feature.by_role("metamer")[0]
    original = cora_feature.parent(metamer)
    assert torch.equal(metamer.edge_index, original.edge_index)  # feature metamers keep the edges
    assert torch.equal(metamer.x.sum(1), original.x.sum(1))  # and every node's number of ones
    data = load_metamers(built, dataset="Cora", reference_model="gcn", kind="structure")
    assert len(data) == 1 and data[0].edge_index.size(1) == original.edge_index.size(1)
    card = read_card(built)
    assert card["metamer_bench"]["reference_models"][0]["weights_sha256"] == read_json(
        built / "checkpoints/Cora/gcn/card.json")["weights_sha256"]


def test_loader_errors_list_valid_options(built):
    with pytest.raises(UserError, match="valid datasets: Cora, MUTAG"):
        load_metamers(built, dataset="Pubmed")
    with pytest.raises(UserError, match="valid roles"):
        load_metamers(built, role="twin")
    with pytest.raises(UserError, match="not a frozen release"):
        load_metamers(built.parent / "nowhere")


def test_one_flipped_byte_fails_verify_and_the_loader_naming_the_file(release):
    shard = release / "data" / "Cora" / "gcn-feature.parquet"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    shard.write_bytes(bytes(raw))
    report = verify_release(release, progress=False)
    assert any(p.startswith("data/Cora/gcn-feature.parquet: SHA-256 mismatch") for p in report.problems)
    with pytest.raises(IntegrityError, match="data/Cora/gcn-feature.parquet"):
        load_frozen_sets(release, dataset="Cora", kind="feature")
    load_frozen_sets(release, dataset="MUTAG")  # other sets still load


def test_a_missing_file_is_named(release):
    (release / "checkpoints" / "MUTAG" / "gin" / "model.safetensors").unlink()
    report = verify_release(release, progress=False)
    assert "checkpoints/MUTAG/gin/model.safetensors: missing" in report.problems
    assert any(p.startswith("MUTAG/gin/feature/L2: not recomputed") for p in report.problems)


def test_tampered_validity_is_caught_by_recomputation(release, cora):
    """Rewrite a shard with flipped validity and a re-hashed manifest: only recomputation can tell."""
    from benchmark.release.build import ReleaseBuilder

    shard = release / "data" / "Cora" / "gcn-structure.parquet"
    bases = {r.id: r for r in read_records(release / "data" / "bases" / "Cora.parquet")}
    records = read_records(shard, bases)
    for r in records:
        if r.role == "metamer":
            r.valid = r.target.clone()  # claim every target node is valid
    write_records(shard, records, bases)
    builder = ReleaseBuilder(tiny_config(), release, progress=False)
    builder.finish()  # re-hash: the manifest now agrees with the tampered shard
    report = verify_release(release, progress=False)
    assert any("Cora/gcn/structure/L1" in p and "recomputed validity differs" in p for p in report.problems)


def test_schema_violations_name_the_field(release):
    manifest = read_json(release / "MANIFEST.json")
    manifest["version"] = "1.0"
    atomic_write_json(release / "MANIFEST.json", manifest)
    with pytest.raises(UserError, match=r"MANIFEST\.version"):
        read_manifest(release)
    card = (release / "README.md").read_text()
    (release / "README.md").write_text(card.replace("weights_sha256: ", "weights_sha256: zz", 1))
    with pytest.raises(UserError, match=r"metamer_bench\.reference_models\[0\]\.weights_sha256"):
        read_card(release)


def test_interrupted_build_resumes_without_redoing_work_and_rebuilds_identically(tmp_path, monkeypatch, built):
    import benchmark.metamers

    real = benchmark.metamers.make_frozen_set
    calls = []

    def flaky(*args, **kwargs):
        calls.append(args[2:4])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the second set
        return real(*args, **kwargs)

    monkeypatch.setattr(benchmark.metamers, "make_frozen_set", flaky)
    root = tmp_path / "v0"
    with pytest.raises(KeyboardInterrupt):
        ReleaseBuilder(tiny_config(), root, progress=False).build()
    assert (root / "data" / "Cora" / "gcn-feature.parquet").is_file() and not (root / "MANIFEST.json").exists()
    assert not list(root.rglob("*.tmp"))
    ReleaseBuilder(tiny_config(), root, progress=False).build()
    assert calls.count(("gcn", "feature")) == 1  # finished work was not redone
    ours, reference = read_json(root / "MANIFEST.json")["files"], read_json(built / "MANIFEST.json")["files"]
    data_files = [f for f in reference if f.startswith(("data/", "checkpoints/"))]
    assert {f: ours[f] for f in data_files} == {f: reference[f] for f in data_files}  # deterministic rebuild
    # The release's identity is stable: timing lives in the unhashed build state only.
    assert (root / "MANIFEST.json").read_bytes() == (built / "MANIFEST.json").read_bytes()
    assert (root / "README.md").read_bytes() == (built / "README.md").read_bytes()
    assert read_json(root / ".build" / "state.json")["build"]["wall_s"] > 0
    with pytest.raises(UserError, match="seeds"):
        ReleaseBuilder(tiny_config(seeds=[5]), root, progress=False)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture()
def serve():
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_Handler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()


def test_download_from_a_local_http_server(built, tmp_path, serve):
    url = serve(built)
    target = download_release("v0", url, tmp_path / "got")
    assert verify_release(target, progress=False).ok
    assert read_json(target / "MANIFEST.json") == read_json(built / "MANIFEST.json")
    # A second download skips every file already present and correct.
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*.parquet")}
    download_release("v0", url, target)
    assert before == {p: p.stat().st_mtime_ns for p in target.rglob("*.parquet")}


def test_a_server_returning_a_wrong_file_leaves_nothing_half_written(release, tmp_path, serve):
    bad = release / "data" / "MUTAG" / "gin-structure.parquet"
    bad.write_bytes(bad.read_bytes()[:-10] + b"0123456789")
    target = tmp_path / "got"
    with pytest.raises(IntegrityError, match="gin-structure.parquet"):
        download_release("v0", serve(release), target)
    assert not (target / "data" / "MUTAG" / "gin-structure.parquet").exists()
    assert not (target / "MANIFEST.json").exists()  # an incomplete folder is never a release
    assert not [p for p in target.rglob("*") if p.name.endswith(".part")]
    with pytest.raises(UserError, match="serves release 'v0', not 'v9'"):
        download_release("v9", serve(release), tmp_path / "other")


def _hf_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


def _card_recipe(release: Path):
    """The data card's own ``graph(row)`` recipe (its Python block), so the documented code is what is tested."""
    card = (release / "README.md").read_text()
    block = card[card.index("def graph(r):"):]
    namespace = {"torch": torch}
    exec(block[:block.index("```")], namespace)  # noqa: S102 - our own generated card
    return namespace


def test_hugging_face_load_dataset_gives_graphs_equal_to_the_pyg_loader(built, tmp_path, monkeypatch):
    """``datasets.load_dataset(folder)`` (default and per-dataset configs, offline) gives rows that the
    card's recipe turns into the same tensors as ``load_frozen_sets``; declared features = parquet schema."""
    import datasets

    from benchmark.release import hf_dataset
    from benchmark.release.card import hf_features
    from benchmark.release.shards import COLUMNS

    _hf_offline(monkeypatch, tmp_path)
    records = {r.id: r for s in load_frozen_sets(built) for r in s.originals + s.variants}
    records |= {r.id: r for name in ("Cora", "MUTAG") for r in read_records(built / f"data/bases/{name}.parquet")}
    default = datasets.load_dataset(str(built), split="train", cache_dir=str(tmp_path / "hf"))
    assert sorted(default["id"]) == sorted(records)
    declared = datasets.Features._from_yaml_list(read_card(built)["dataset_info"][0]["features"])
    schema = datasets.Features.from_arrow_schema(pq.read_schema(built / "data/Cora/gcn-feature.parquet"))
    assert list(default.features) == COLUMNS and default.features == schema == declared
    assert [info["features"] for info in read_card(built)["dataset_info"]] == [hf_features()] * 4
    for name in ("Cora", "MUTAG"):
        rows = datasets.load_dataset(str(built), name, split="train", cache_dir=str(tmp_path / "hf"))
        assert set(rows["dataset"]) == {name}
        by_id = {r["id"]: r for r in rows}
        assert set(by_id) == {rid for rid, r in records.items() if r.dataset == name}
        recipe = _card_recipe(built)
        recipe["by_id"] = by_id
        for rid, row in by_id.items():
            for column in ("x_same_as", "edge_index_same_as"):  # one lookup always reaches stored values
                assert row[column] is None or by_id[row[column]][column] is None, (rid, column)
            x, edge_index = recipe["graph"](row)
            assert torch.equal(x, records[rid].x) and torch.equal(edge_index, records[rid].edge_index), rid
            assert torch.equal(torch.tensor(row["valid_mask"]), records[rid].valid), rid
    assert set(hf_dataset(built, "bases")["role"]) == {"base"}
    with pytest.raises(UserError, match="valid configs: Cora, MUTAG, bases, default"):
        hf_dataset(built, "Pubmed")


@pytest.mark.skipif(not (SHIPPED / "MANIFEST.json").exists(), reason="release v1 not built in this checkout")
def test_the_shipped_release_loads_verified():
    manifest = read_manifest(SHIPPED)
    datasets = {s["dataset"] for s in manifest["sets"]}
    assert {"Cora", "CiteSeer", "Photo"} <= datasets and ({"MUTAG", "PROTEINS"} & datasets)
    assert len({s["reference_model"] for s in manifest["sets"]}) >= 6
    assert {s["kind"] for s in manifest["sets"]} >= {"feature", "structure"}
    assert sum(e["bytes"] for e in manifest["files"].values()) <= 60 * 2**20
    data = load_metamers(SHIPPED, dataset="Cora", reference_model="gcn", kind="feature")
    assert len(data) >= 2 and data[0].x.shape == (2708, 1433)


@pytest.mark.skipif(not (SHIPPED / "MANIFEST.json").exists(), reason="release v1 not built in this checkout")
def test_the_shipped_release_is_a_hugging_face_dataset(tmp_path, monkeypatch):
    """The shipped card declares the generated features, and a dataset config loads offline into graphs."""
    import datasets

    from benchmark.release.card import hf_configs, hf_features

    _hf_offline(monkeypatch, tmp_path)
    card = read_card(SHIPPED)
    names = [c["config_name"] for c in card["configs"]][1:-1]  # default, <datasets in build order>, bases
    assert sorted(names) == sorted(read_manifest(SHIPPED)["generator"]["config"]["datasets"])
    assert card["configs"] == hf_configs(names)
    assert [info["features"] for info in card["dataset_info"]] == [hf_features()] * len(card["configs"])
    rows = datasets.load_dataset(str(SHIPPED), "MUTAG", split="train", cache_dir=str(tmp_path / "hf"))
    recipe = _card_recipe(SHIPPED)
    recipe["by_id"] = {r["id"]: r for r in rows}
    records = {r.id: r for s in load_frozen_sets(SHIPPED, dataset="MUTAG") for r in s.originals + s.variants}
    assert {r for r in recipe["by_id"] if "/base/" not in r} == set(records)
    for rid, record in records.items():
        x, edge_index = recipe["graph"](recipe["by_id"][rid])
        assert torch.equal(x, record.x) and torch.equal(edge_index, record.edge_index), rid


def test_model_overrides_pin_a_reference_config(tmp_path, mutag):
    config = tiny_config(kinds=["feature"], datasets={"MUTAG": {"models": ["gin"]}},
                         model_overrides={"gin": {"norm": "layer", "hidden_channels": 16}})
    builder = ReleaseBuilder(config, tmp_path / "r", progress=False)
    (unit,) = builder.units()
    model = builder.checkpoint(unit)
    assert (model.config.norm, model.config.hidden_channels, model.config.task) == ("layer", 16, "graph")
    assert config.to_dict()["model_overrides"] == {"gin": {"norm": "layer", "hidden_channels": 16}}
    assert "model_overrides" not in tiny_config().to_dict()  # cards of releases that pin nothing are unchanged


@pytest.mark.parametrize("overrides, message", [
    ({"sage": {"norm": "layer"}}, "no dataset of the release uses"),
    ({"gin": {"norms": "layer"}}, "unknown field(s) ['norms']; valid: ["),
    ({"gin": {"in_channels": 3}}, "unknown field(s) ['in_channels']"),
    ({"gin": "layer"}, "must be a mapping of ModelConfig fields"),
])
def test_model_overrides_errors_name_what_is_valid(overrides, message):
    with pytest.raises(UserError, match=re.escape(message)):
        tiny_config(model_overrides=overrides)


def test_the_v1_config_pins_what_release_v1_was_built_with():
    config = ReleaseConfig.from_yaml(Path(__file__).resolve().parents[1] / "scripts" / "release_v1.yaml")
    card = read_manifest(SHIPPED)["generator"]["config"]
    shipped = {k: v for k, v in card.items() if k != "model_overrides"}
    assert {k: v for k, v in config.to_dict().items() if k != "model_overrides"} == shipped
    for arch, overrides in config.model_overrides.items():
        frozen = read_json(SHIPPED / "checkpoints" / "Cora" / arch / "card.json")["config"]
        assert {k: frozen[k] for k in overrides} == overrides


def test_cli_verify_json_and_exit_codes(built, release, capsys):
    from benchmark.cli import main

    assert main(["verify", str(built), "--json", "--no-progress"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["problems"] == [] and doc["checked_sets"] == len(read_manifest(built)["sets"])
    shard = release / "data" / "Cora" / "gcn-feature.parquet"
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    assert main(["verify", str(release), "--json", "--no-progress"]) == 1  # a failed check, not bad usage
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert not doc["ok"] and any("gcn-feature.parquet: SHA-256 mismatch" in p for p in doc["problems"])
    assert "FAILED" in captured.err
