"""The release opened once (benchmark/release/opened.py) on the shipped release v1: identity, facts read
without any shard, verification modes, and a submission card checked before the release is loaded."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmark.errors import IntegrityError, UserError
from benchmark.files import atomic_write_json, read_json, sha256_file
from benchmark.release import DatasetDims, Release, VerificationMode
from benchmark.release.known import KNOWN_RELEASES

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data_cards" / "v1"
pytestmark = pytest.mark.skipif(not (SHIPPED / "MANIFEST.json").is_file(), reason="release v1 not in this checkout")


@pytest.fixture()
def no_shards(monkeypatch):
    """Fail the test if any shard (or base graph) is decoded."""
    import benchmark.release.shards as shards

    def refuse(path, references=None):
        raise AssertionError(f"a shard was read: {path}")

    monkeypatch.setattr(shards, "read_records", refuse)


def test_v1_opens_with_its_identity_and_facts_without_reading_a_shard(no_shards):
    release = Release.open(SHIPPED)
    pinned = next(r for r in KNOWN_RELEASES if r.name == "metamer-bench-v1")
    assert release.identity == {"name": pinned.name, "version": pinned.version,
                                "manifest_sha256": sha256_file(SHIPPED / "MANIFEST.json")}
    assert release.identity["manifest_sha256"] == pinned.manifest_sha256
    assert release.datasets == ["CiteSeer", "Cora", "MUTAG", "Photo"]
    # v1 has no facts table: the dims come from its listed, hash-checked reference cards.
    assert "datasets" not in release.manifest
    assert release.dims["Cora"] == DatasetDims(1433, 7, "node")
    assert release.dims["MUTAG"] == DatasetDims(7, 2, "graph")
    assert {d: release.reference_best(d)[0] for d in release.datasets} == pytest.approx(pinned.reference_best,
                                                                                         abs=1e-6)
    assert release.reference_weights() == {}  # v1 declares no reference seeds
    assert [s["key"] for s in release.select(dataset="MUTAG", kind="feature")] == [
        "MUTAG/gcn/feature/L2", "MUTAG/gin/feature/L2", "MUTAG/sage/feature/L2"]
    with pytest.raises(UserError, match=r"unknown kind 'featur'; valid kinds: feature, structure"):
        release.select(kind="featur")


def test_sets_load_through_the_one_object():
    release = Release.open(SHIPPED)
    sets = release.load_sets(dataset="MUTAG", reference_model="gin")
    assert [s.key for s in sets] == ["MUTAG/gin/feature/L2", "MUTAG/gin/structure/L2"]
    assert all(s.originals and s.variants for s in sets)
    assert Release.open(release) is release  # already open in the mode asked for: passed on as it is


def test_verification_modes():
    assert VerificationMode.of(True) is VerificationMode.ALL_CHECKS
    assert VerificationMode.of(False) is VerificationMode.NO_CHECKS
    assert VerificationMode.of("basic_checks") is VerificationMode.BASIC_CHECKS
    with pytest.raises(UserError, match="valid verification modes: all_checks, basic_checks, no_checks"):
        VerificationMode.of("some_checks")


def test_basic_checks_catch_sizes_and_all_checks_catch_edits(tmp_path):
    root = tmp_path / "v1"
    root.mkdir()
    shutil.copyfile(SHIPPED / "MANIFEST.json", root / "MANIFEST.json")
    shutil.copytree(SHIPPED / "checkpoints" / "MUTAG", root / "checkpoints" / "MUTAG")
    card = "checkpoints/MUTAG/gin/card.json"
    data = (root / card).read_bytes()
    (root / card).write_bytes(data.replace(b'"gin"', b'"GIN"', 1))  # same size, other bytes
    Release.open(root, VerificationMode.BASIC_CHECKS).check([card])
    Release.open(root, VerificationMode.NO_CHECKS).check([card])
    with pytest.raises(IntegrityError, match=r"checkpoints/MUTAG/gin/card\.json: SHA-256 mismatch"):
        Release.open(root).check([card])
    (root / card).write_bytes(data[:-5])
    with pytest.raises(IntegrityError, match=r"\(basic_checks\):\n  checkpoints/MUTAG/gin/card\.json: 1168 bytes, "
                                             r"the manifest lists 1173"):
        Release.open(root, VerificationMode.BASIC_CHECKS).check([card])
    with pytest.raises(IntegrityError, match=r"data/bases/MUTAG\.parquet: missing"):
        Release.open(root, "basic_checks").check(["data/bases/MUTAG.parquet"])


@pytest.mark.parametrize("change, message", [
    (lambda c: c["architecture"].update(name="gcnn"), r"architecture\.name: unknown model 'gcnn'"),
    (lambda c: c["architecture"]["config"].update(in_channels=1432),
     r"architecture\.config\.in_channels is 1432 but Cora has in_channels = 1433"),
    (lambda c: c["datasets"].pop("Photo"), r"the release scores .* but the card has no weights for \['Photo'\]"),
])
def test_a_typo_in_a_card_fails_before_any_shard_is_loaded(tmp_path, no_shards, change, message):
    """evaluate_submission checks the card against the manifest's facts first: a typo costs no release load."""
    from benchmark.scoring import evaluate_submission

    entry = tmp_path / "submissions" / "typo"
    entry.mkdir(parents=True)
    card = read_json(REPO / "submissions" / "gcn-baseline" / "submission.json")
    change(card)
    atomic_write_json(entry / "submission.json", card)
    with pytest.raises(UserError, match=message):
        evaluate_submission(entry, SHIPPED, num_bootstrap=10)
