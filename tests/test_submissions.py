"""Submission intake and results: every refusal case, and evaluate end to end on a real release folder."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from benchmark.checkpoints import save_checkpoint, state_dict_bytes
from benchmark.cli import main
from benchmark.errors import IntegrityError, UserError
from benchmark.files import atomic_write_bytes, atomic_write_json, read_json, sha256_file
from benchmark.models import count_parameters, default_config
from benchmark.records import FrozenSet, GraphRecord
from benchmark.submission_card import read_submission
from benchmark.submissions import validate_submission, write_submission

SEEDS = (0, 1, 2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(cora):
    """Three GCNs on Cora (seeds 0, 1, 2), briefly trained: ``[(model, metrics)]``."""
    from benchmark.training import train_model

    config = default_config("gcn", cora.num_features, cora.num_classes)
    return [train_model(cora, config, seed=s, epochs=30, patience=30) for s in SEEDS]


def write_entry(folder: Path, models, name: str = "tiny-gcn") -> Path:
    """A valid submission folder: ``Cora/seed-<n>.safetensors`` + ``submission.json``."""
    config = {k: v for k, v in models[0].config.to_dict().items() if k not in ("arch", "in_channels", "out_channels", "task")}
    card = {"name": name, "description": "GCN trained for 30 epochs.", "authors": ["A. Tester"],
            "paper_url": "https://arxiv.org/abs/1609.02907", "code_url": None, "license": "MIT", "tier": "self-reported",
            "architecture": {"name": "gcn", "config": config},
            "training": {"data": "Cora public split, train nodes", "recipe": "Adam lr 0.01, wd 5e-4, 30 epochs"},
            "seeds": list(SEEDS), "num_parameters": count_parameters(models[0])}
    return write_submission(folder, card, {"Cora": dict(zip(SEEDS, models))})


@pytest.fixture()
def entry(tmp_path, trained):
    return write_entry(tmp_path / "submissions" / "tiny-gcn", [m for m, _ in trained])


def edit_card(folder: Path, change) -> None:
    card = read_json(folder / "submission.json")
    change(card)
    atomic_write_json(folder / "submission.json", card)


def rehash(folder: Path, seed: int) -> None:
    """Make the card's SHA-256 match the (tampered) file, so a later check has to catch it."""
    edit_card(folder, lambda c: c["datasets"]["Cora"]["weights"][str(seed)].__setitem__(
        "sha256", sha256_file(folder / "Cora" / f"seed-{seed}.safetensors")))


def test_a_valid_submission_passes_and_loads_the_models(entry, trained, cora):
    checked = validate_submission(entry, datasets=["Cora"])
    assert checked.submission.entry == "tiny-gcn" and checked.submission.seeds == [0, 1, 2]
    models = checked.models["Cora"]
    assert len(models) == 3 and checked.num_parameters == {"Cora": 92231}
    assert all(flag["passed"] for seed in ("0", "1", "2") for flag in checked.red_flags["Cora"][seed])
    x, ei = cora.data.x, cora.data.edge_index
    with torch.no_grad():
        for loaded, (original, _) in zip(models, trained):
            assert torch.equal(loaded(x, ei), original.eval()(x, ei))


def test_validate_command_ok_and_failure_exit_codes(entry, release, capsys):
    assert main(["validate", str(entry), "--release", str(release)]) == 0
    assert "OK" in capsys.readouterr().out
    edit_card(entry, lambda c: c["datasets"]["Cora"]["weights"]["1"].__setitem__("sha256", "0" * 64))
    assert main(["validate", str(entry), "--release", str(release)]) == 1  # refused at intake: a failed check
    err = capsys.readouterr().err
    assert "metamer-bench validate: error:" in err and "SHA-256" in err and "weights.1" in err


# -- refusals: each case is caught by its own class of check, with a message naming the field --------------

def test_pickle_renamed_safetensors_is_refused(entry, trained):
    target = entry / "Cora" / "seed-0.safetensors"
    torch.save(trained[0][0].state_dict(), target)  # a pickle (zip container) under a .safetensors name
    rehash(entry, 0)
    with pytest.raises(IntegrityError, match=r"seed-0\.safetensors: this is a pickle/torch\.save file"):
        validate_submission(entry)


def test_hash_mismatch_is_refused(entry, trained):
    atomic_write_bytes(entry / "Cora" / "seed-2.safetensors", state_dict_bytes(trained[0][0]))  # swapped file
    with pytest.raises(IntegrityError, match=r"datasets\.Cora\.weights\.2 \(seed-2\.safetensors\): SHA-256 is"):
        validate_submission(entry)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("license"), r"submission: 'license' is a required property"),
    (lambda c: c.__setitem__("seeds", [0, 1]), r"submission\.seeds: \[0, 1\] is too short"),
    (lambda c: c.__setitem__("tier", "gold"), r"submission\.tier: 'gold' is not one of"),
    (lambda c: c["architecture"]["config"].__setitem__("hidden", 8), r"submission\.architecture\.config: .*'hidden' was unexpected"),
    (lambda c: c.__setitem__("code_url", "ftp://x"), r"submission\.code_url: 'ftp://x' does not match"),
    (lambda c: c["datasets"]["Cora"]["weights"]["0"].__setitem__("sha256", "abc"), r"weights\['0'\]\.sha256: 'abc' does not match"),
])
def test_schema_violations_name_the_field(entry, change, message):
    edit_card(entry, change)
    with pytest.raises(UserError, match=message) as info:
        validate_submission(entry)
    assert "schema violation" in str(info.value)


def test_nan_weights_are_refused(entry, trained):
    tensors = {k: v.clone() for k, v in trained[1][0].state_dict().items()}
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(entry / "Cora" / "seed-1.safetensors"))
    rehash(entry, 1)
    with pytest.raises(IntegrityError, match=rf"NaN or Inf values are refused: {name}"):
        validate_submission(entry)


def test_dead_weights_are_refused_by_the_red_flag_checks(entry, trained):
    # All-zero weights load cleanly but nothing reaches the input: no gradient, constant stages.
    tensors = {k: torch.zeros_like(v) for k, v in trained[2][0].state_dict().items()}
    save_file(tensors, str(entry / "Cora" / "seed-2.safetensors"))
    rehash(entry, 2)
    with pytest.raises(IntegrityError, match=r"(?s)weights refused.*seed-2.safetensors\): refused by the red-flag "
                                             r"checks.*input_gradient: zero gradient with respect to x at: logits"):
        validate_submission(entry)


def test_wrong_shapes_are_refused(entry):
    # The card declares 32 hidden channels; the files hold 64: strict loading refuses.
    edit_card(entry, lambda c: c["architecture"]["config"].__setitem__("hidden_channels", 32))
    with pytest.raises(IntegrityError, match=r"weights do not fit the declared config \(shape mismatches"):
        validate_submission(entry)


def test_wrong_tensor_names_are_refused(entry, trained):
    tensors = {f"renamed.{k}": v for k, v in trained[0][0].state_dict().items()}
    save_file(tensors, str(entry / "Cora" / "seed-0.safetensors"))
    rehash(entry, 0)
    with pytest.raises(IntegrityError, match=r"missing tensors .*unexpected tensors"):
        validate_submission(entry)


@pytest.mark.parametrize("path, message", [
    ("../seed-0.safetensors", r"'\.\.' would leave the entry folder"),
    ("Cora/../../x/seed-0.safetensors", r"'\.\.' would leave the entry folder"),
    ("/etc/seed-0.safetensors", r"must be a relative POSIX path"),
    ("Cora/seed-0.pt", r"named seed-<n>\.safetensors \(safetensors only\)"),
    ("Cora/seed-1.safetensors", r"the file for seed 0 must be named seed-0\.safetensors"),
])
def test_unsafe_or_misnamed_paths_are_refused(entry, path, message):
    edit_card(entry, lambda c: c["datasets"]["Cora"]["weights"]["0"].__setitem__("path", path))
    with pytest.raises(IntegrityError, match=message):
        validate_submission(entry)


def test_a_symlink_out_of_the_folder_is_refused(entry, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    shutil.copyfile(entry / "Cora" / "seed-0.safetensors", outside)
    (entry / "Cora" / "seed-0.safetensors").unlink()
    os.symlink(outside, entry / "Cora" / "seed-0.safetensors")
    with pytest.raises(IntegrityError, match=r"outside the entry folder \(symlink\?\)"):
        validate_submission(entry)


def test_a_missing_seed_file_is_refused(entry):
    (entry / "Cora" / "seed-2.safetensors").unlink()
    with pytest.raises(UserError, match=r"datasets\.Cora\.weights\.2: file not found"):
        validate_submission(entry)


def test_a_declared_seed_without_weights_is_refused(entry):
    edit_card(entry, lambda c: c["datasets"]["Cora"]["weights"].pop("2"))
    with pytest.raises(UserError, match=r"datasets\.Cora\.weights: no weights file for seed\(s\) 2"):
        read_submission(entry)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["architecture"].__setitem__("name", "resnet"), r"unknown model 'resnet'; valid models: .*gcn"),
    (lambda c: c["architecture"]["config"].__setitem__("activation", "swish"), r"unknown activation 'swish'"),
    (lambda c: c["architecture"]["config"].__setitem__("out_channels", 3), r"out_channels is 3 but Cora has out_channels = 7"),
    (lambda c: c.__setitem__("num_parameters", 1000), r"num_parameters is 1000 but the declared architecture has 92231"),
])
def test_card_contents_are_checked(entry, change, message):
    edit_card(entry, change)
    with pytest.raises(UserError, match=message):
        validate_submission(entry)


def test_release_coverage_is_checked(entry):
    with pytest.raises(UserError, match=r"no weights for \['CiteSeer'\]"):
        read_submission(entry, datasets=["Cora", "CiteSeer"])


def test_missing_folder_or_card(tmp_path):
    with pytest.raises(UserError, match="submission folder not found"):
        validate_submission(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="submission.json not found"):
        validate_submission(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "submission.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        validate_submission(tmp_path / "broken")


# -- evaluate end to end on a release folder ----------------------------------------------------------------

def write_release(root: Path, cora, reference, reference_acc: float) -> Path:
    """A one-set release written with the release package's own writers (shards, checkpoint, manifest)."""
    from benchmark.release.manifest import write_manifest
    from benchmark.release.shards import write_records
    from benchmark.versions import library_versions

    data = cora.data
    n = data.num_nodes
    target = torch.zeros(n, dtype=torch.bool)
    target[cora.index("test")] = True
    gen = torch.Generator().manual_seed(0)

    def make(rid, role, x, seed, parent="Cora/gcn/feature/L1/original", valid=None):
        common = dict(dataset="Cora", task="node", graph_index=0, edge_index=data.edge_index, y=data.y)
        if role == "base":
            return GraphRecord(id=rid, role=role, parent_id=None, reference_model="", kind="", layer=0, seed=-1,
                               x=x, target=torch.ones(n, dtype=torch.bool), valid=torch.ones(n, dtype=torch.bool),
                               similarity=torch.ones(n), **common)
        return GraphRecord(id=rid, role=role, parent_id=None if role == "original" else parent, reference_model="gcn",
                           kind="feature", layer=1, seed=seed, x=x, target=target,
                           valid=target.clone() if valid is None else valid,
                           similarity=torch.nn.functional.cosine_similarity(x, data.x, dim=1), **common)

    base = make("Cora/base", "base", data.x, -1)
    records = [make("Cora/gcn/feature/L1/original", "original", data.x, -1)]
    for seed in (0, 1):
        shuffled = data.x[torch.randperm(n, generator=gen)]
        near = (data.x + (torch.rand(data.x.shape, generator=gen) < 0.002).float()) % 2
        mixed = torch.where(torch.rand(n, 1, generator=gen) < 0.5, data.x, shuffled)
        valid = target & (torch.rand(n, generator=gen) < 0.8)
        records += [make(f"Cora/gcn/feature/L1/s{seed}/{role}", role, x, seed, valid=valid)
                    for role, x in (("metamer", mixed), ("near", near), ("far", shuffled))]
    write_records(root / "data" / "bases" / "Cora.parquet", [base])
    write_records(root / "data" / "Cora" / "gcn-feature.parquet", records, references={base.id: base})
    save_checkpoint(reference, root / "checkpoints" / "Cora" / "gcn",
                    {"dataset": "Cora", "seed": 0, "metrics": {"test_acc": reference_acc}})
    header = {"name": "metamer-bench-test", "release": "v1", "version": "1.0.0",
              "bases": {"Cora": "data/bases/Cora.parquet"},
              "sets": [{"key": "Cora/gcn/feature/L1", "dataset": "Cora", "task": "node", "reference_model": "gcn",
                        "kind": "feature", "layer": 1, "shard": "data/Cora/gcn-feature.parquet",
                        "checkpoint": "checkpoints/Cora/gcn", "seeds": [0, 1]}],
              "generator": {"version": "test", "config": {}}, "library_versions": library_versions()}
    write_manifest(root, header)
    return root


@pytest.fixture()
def release(tmp_path, cora, trained):
    return write_release(tmp_path / "release", cora, trained[0][0], reference_acc=0.815)


def test_evaluate_writes_a_schema_valid_deterministic_results_file(entry, release, trained, capsys):
    from benchmark.evaluate import results_path
    from benchmark.leaderboard.ranking import parse_result
    from benchmark.schemas import check_schema

    assert main(["evaluate", str(entry), "--release", str(release), "--bootstrap", "200"]) == 0
    out = results_path(entry)
    assert out == entry.parent / "results" / "tiny-gcn.json"
    assert "invariance_consistency" in capsys.readouterr().out
    first = out.read_bytes()
    result = json.loads(first)
    check_schema(result, "result", "result", "results file")
    manifest_sha = sha256_file(release / "MANIFEST.json")
    assert result["release"] == {"name": "metamer-bench-test", "version": "1.0.0", "manifest_sha256": manifest_sha}
    assert result["submission"]["seeds"] == [0, 1, 2] and result["submission"]["tier"] == "self-reported"
    assert result["submission"]["architecture"] == "gcn" and result["evaluator_version"]
    assert {"torch", "python"} <= set(result["library_versions"]) and "cpu_count" in result["hardware"]
    test_acc = sum(m["test_acc"] for _, m in trained) / 3
    assert result["clean_acc_by_dataset"]["Cora"] == pytest.approx(test_acc, abs=1e-6)
    assert result["accuracy_floor"]["Cora"]["reference_best"] == 0.815
    assert [c["reference_model"] for c in result["cross_architecture"]] == ["gcn"]
    assert result["sets"][0]["key"] == "Cora/gcn/feature/L1"
    row = parse_result(result, "tiny-gcn.json")  # the leaderboard reads it as is
    assert row.ic.mean == result["aggregate"]["invariance_consistency"]["mean"]

    # Same inputs, same bytes (timing aside).
    assert main(["evaluate", str(entry), "--release", str(release), "--bootstrap", "200"]) == 0
    second = json.loads(out.read_bytes())
    first_json = json.loads(first)
    for doc in (first_json, second):
        doc.pop("wall_s")
    assert json.dumps(first_json, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_evaluate_refuses_a_tampered_release(entry, release):
    from benchmark.scoring import evaluate_submission

    shard = release / "data" / "Cora" / "gcn-feature.parquet"
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(IntegrityError, match=r"gcn-feature\.parquet: SHA-256 mismatch"):
        evaluate_submission(entry, release, num_bootstrap=10)


def test_evaluate_refuses_an_invalid_submission_before_scoring(entry, release):
    from benchmark.scoring import evaluate_submission

    (entry / "Cora" / "seed-1.safetensors").unlink()
    with pytest.raises(UserError, match="file not found"):
        evaluate_submission(entry, release, num_bootstrap=10)
    assert not (entry.parent / "results").exists()


def test_floor_failure_is_recorded(entry, tmp_path, cora, trained):
    from benchmark.scoring import evaluate_submission

    release = write_release(tmp_path / "strict", cora, trained[0][0], reference_acc=0.99)
    result = evaluate_submission(entry, release, num_bootstrap=10)
    floor = result["accuracy_floor"]["Cora"]
    assert floor["threshold"] == pytest.approx(0.891) and floor["passed"] is False


def test_validate_and_evaluate_json_output_named_progress_and_exit_codes(entry, release, tmp_path, capsys):
    assert main(["validate", str(entry), "--release", str(release), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"ok": True, "entry": str(entry), "architecture": "gcn", "seeds": [0, 1, 2], "datasets": ["Cora"],
                   "num_parameters": {"Cora": 92231}, "release": str(release)}

    out = tmp_path / "scores.json"
    assert main(["evaluate", str(entry), "--release", str(release), "--bootstrap", "50", "--out", str(out),
                 "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # stdout holds the one document; the summary went to stderr
    assert doc["ok"] and doc["results_file"] == str(out) and doc["result"] == json.loads(out.read_text())
    assert "invariance_consistency" in captured.err
    # The bar names the entry, the dataset and the set, and stays on screen once done.
    finals = [line.rsplit("\r", 1)[-1] for line in captured.err.split("\n")]
    assert any(f.startswith("tiny-gcn Cora inference: 100%") and "Cora/gcn/feature/L1" in f for f in finals), finals

    edit_card(entry, lambda c: c["datasets"]["Cora"]["weights"]["1"].__setitem__("sha256", "0" * 64))
    for verb in (["validate"], ["evaluate", "--bootstrap", "50", "--out", str(out)]):
        assert main([verb[0], str(entry), "--release", str(release), "--json", *verb[1:]]) == 1
        captured = capsys.readouterr()
        refused = json.loads(captured.out)
        assert refused["ok"] is False and "SHA-256" in refused["error"] and "weights.1" in captured.err


# -- Hostile input: every case is refused with one line, before anything large is allocated ------------------------

def _raw_card(folder: Path, text: str | bytes) -> None:
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    (folder / "submission.json").write_bytes(data)


@pytest.mark.parametrize("mangle, message", [
    (lambda t: t.replace('"name": "tiny-gcn"', '"name": "tiny-gcn", "name": "other"'), "duplicate key 'name'"),
    (lambda t: t.encode("utf-8").replace(b"A. Tester", b"A. T\xe9ster"), "not UTF-8"),
    (lambda t: '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    (lambda t: t.replace('"A. Tester"', '"' + "x" * (2 << 20) + '"'), "more than the 1048576"),
    (lambda t: t.replace('"A. Tester"', "NaN"), "NaN is not valid JSON"),
])
def test_malformed_cards_get_one_line_errors(entry, capsys, mangle, message):
    text = (entry / "submission.json").read_text(encoding="utf-8")
    _raw_card(entry, mangle(text))
    assert main(["validate", str(entry)]) == 1  # read and refused at intake: a failed check
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("change, path", [
    (lambda c: c.__setitem__("authors", ["x" * 201]), r"authors\[0\]: .* is too long"),
    (lambda c: c.__setitem__("name", "tiny\x07gcn"), r"submission\.name: .* should not be valid under"),
    (lambda c: c.__setitem__("name", "tiny-gcn\n"), r"submission\.name: .* should not be valid under"),
    (lambda c: c["architecture"]["config"].__setitem__("k_hops", 10**9), r"k_hops: 1000000000 is greater than"),
    (lambda c: c["datasets"]["Cora"]["weights"]["0"].__setitem__("path", "Cora/seed-0\x00.safetensors"),
     r"weights\['0'\]\.path: .* should not be valid under"),
    (lambda c: c["architecture"]["config"].__setitem__("hidden_channels", 20000), r"hidden_channels: 20000 is greater"),
])
def test_string_caps_safe_names_and_config_bounds(entry, change, path):
    edit_card(entry, change)
    with pytest.raises(UserError, match=path):
        read_submission(entry)


def test_reserved_and_symlinked_entries_are_refused(tmp_path, entry):
    for name in ("results", "reruns"):  # results files and rerun records (benchmark.rerun) live there
        reserved = shutil.copytree(entry, tmp_path / "submissions" / name)
        with pytest.raises(UserError, match=f"'{name}' is reserved"):
            read_submission(reserved)
    link = tmp_path / "submissions" / "linked"
    link.symlink_to(entry, target_is_directory=True)
    with pytest.raises(IntegrityError, match="is a symlink"):
        read_submission(link)


def test_a_config_over_the_compute_budget_is_refused_with_its_estimate_before_building(entry):
    from benchmark.budget import DEFAULT_BUDGET, estimate

    # Inside every schema bound, far outside the budget: 256 layers of width 8192.
    edit_card(entry, lambda c: c["architecture"]["config"].update(hidden_channels=8192, num_layers=256))
    with pytest.raises(UserError, match=r"compute budget \(parameters ~3\.44e\+10 > budget 5e\+07; activation bytes"):
        validate_submission(entry)
    assert estimate({"in_channels": 1433, "out_channels": 7, "hidden_channels": 8192, "num_layers": 256}).parameters \
        > DEFAULT_BUDGET.parameters


def test_every_registry_default_fits_the_budget_with_a_wide_margin(citeseer):
    """The budget must never refuse the zoo: every default config fits it 20x over, on the widest features
    (CiteSeer, 3,703) of the registered datasets; the reference graph covers the largest one (Photo)."""
    from dataclasses import fields

    from benchmark.budget import DEFAULT_BUDGET, REFERENCE_EDGES, REFERENCE_NODES, estimate
    from benchmark.models import MODEL_REGISTRY, default_config
    from conftest import load_or_skip

    worst = {f.name: 0 for f in fields(DEFAULT_BUDGET)}
    for arch in MODEL_REGISTRY:
        cost = estimate(default_config(arch, citeseer.num_features, citeseer.num_classes).to_dict())
        for name in worst:
            worst[name] = max(worst[name], getattr(cost, name))
    for name, value in worst.items():
        assert value * 20 <= getattr(DEFAULT_BUDGET, name), (name, value)
    photo = load_or_skip("Photo").data
    assert photo.num_nodes <= REFERENCE_NODES and photo.edge_index.size(1) <= REFERENCE_EDGES


def test_an_extra_huge_tensor_is_refused_from_the_header_alone(entry, tmp_path):
    """An extra 2 GiB tensor (a sparse file: no disk used) is refused before any data is read."""
    import struct
    import subprocess
    import sys

    path = entry / "Cora" / "seed-1.safetensors"
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    header["extra"] = {"dtype": "F32", "shape": [1 << 29], "data_offsets": [end, end + (2 << 30)]}
    head = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(head)) + head + data[8 + length:])
        handle.truncate(8 + len(head) + end + (2 << 30))
    edit_card(entry, lambda c: c["datasets"]["Cora"]["weights"]["1"].__setitem__("sha256", sha256_file(path)))
    # VmHWM (peak RSS of this process image) rather than ru_maxrss, which Linux carries across exec
    # from the forking pytest process.
    script = ("import sys\nfrom benchmark.errors import UserError\n"
              "from benchmark.submissions import validate_submission\n"
              "try:\n    validate_submission(sys.argv[1]); rc = 0\n"
              "except UserError as err:\n    print(err, file=sys.stderr); rc = 1\n"
              "peak = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
              "print(rc, peak)")
    run = subprocess.run([sys.executable, "-c", script, str(entry)], capture_output=True, text=True, timeout=600)
    rc, peak_kib = map(int, run.stdout.split())
    assert rc == 1 and "unexpected tensors ['extra']" in run.stderr and "nothing was loaded" in run.stderr
    assert peak_kib < 1 << 20, f"peak RSS {peak_kib} KiB: the 2 GiB tensor was read"


def test_float64_weights_that_overflow_float32_are_refused(entry):
    path = entry / "Cora" / "seed-2.safetensors"
    from safetensors.torch import load_file

    tensors = {k: v.double() for k, v in load_file(str(path)).items()}
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] = 1e300  # finite in float64, Inf in the float32 model
    save_file(tensors, str(path))
    edit_card(entry, lambda c: c["datasets"]["Cora"]["weights"]["2"].__setitem__("sha256", sha256_file(path)))
    with pytest.raises(IntegrityError, match=rf"not finite in the model's dtype torch\.float32.*{name}"):
        validate_submission(entry)


def test_copies_of_one_checkpoint_do_not_pass_as_seeds(entry):
    for seed in (1, 2):
        shutil.copyfile(entry / "Cora" / "seed-0.safetensors", entry / "Cora" / f"seed-{seed}.safetensors")
    sha = sha256_file(entry / "Cora" / "seed-0.safetensors")
    edit_card(entry, lambda c: [c["datasets"]["Cora"]["weights"][s].__setitem__("sha256", sha) for s in ("1", "2")])
    with pytest.raises(IntegrityError, match=r"weights\.1: the same weights as seed 0.*\n.*weights\.2: the same"):
        validate_submission(entry)


def test_absurd_bootstrap_is_refused_before_the_release_is_read(tmp_path, capsys):
    from benchmark.evaluate import Evaluator

    with pytest.raises(UserError, match=r"from 1 to 100000, got 100000000"):
        Evaluator(tmp_path / "no-such-release", num_bootstrap=100_000_000)


def test_evaluate_reads_only_listed_hash_checked_reference_cards(entry, release):
    """The accuracy floor comes from the release's verified cards, never from an unlisted or edited one."""
    from benchmark.release import Release

    card_path = release / "checkpoints" / "Cora" / "gcn" / "card.json"
    unlisted = release / "checkpoints" / "Cora" / "gat" / "card.json"
    unlisted.parent.mkdir(parents=True)
    atomic_write_json(unlisted, {**read_json(card_path), "metrics": {"test_acc": 0.99}})
    assert set(Release.open(release).reference_cards["Cora"]) == {"gcn"}  # an unlisted card is not read

    edited = read_json(card_path)
    edited["metrics"]["test_acc"] = 0.2  # would lower the floor for everyone
    atomic_write_json(card_path, edited)
    with pytest.raises(IntegrityError, match=r"checkpoints/Cora/gcn/card\.json: SHA-256 mismatch"):
        Release.open(release).reference_cards
    card_path.unlink()
    with pytest.raises(IntegrityError, match=r"checkpoints/Cora/gcn/card\.json: missing"):
        Release.open(release).reference_cards
