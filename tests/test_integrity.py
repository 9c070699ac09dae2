"""Leaderboard integrity: only results produced by scoring a submission of a known release may rank."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.errors import IntegrityError
from benchmark.files import atomic_write_json, read_json, sha256_file
from benchmark.leaderboard.provenance import check_provenance
from benchmark.release.known import KNOWN_RELEASES

REPO = Path(__file__).resolve().parents[1]
ENTRY = "sgc-baseline"


def test_pinned_releases_match_the_shipped_release_folders():
    """The table the leaderboard trusts is what the verified shipped release gives."""
    from benchmark.release import Release

    for release in KNOWN_RELEASES:
        folder = REPO / "data_cards" / release.name.removeprefix("metamer-bench-")
        manifest = read_json(folder / "MANIFEST.json")
        assert (manifest["name"], manifest["version"]) == (release.name, release.version)
        assert sha256_file(folder / "MANIFEST.json") == release.manifest_sha256
        cards = Release.open(folder).reference_cards  # listed and hash-checked
        best = {d: max(c["metrics"]["test_acc"] for c in by_arch.values()) for d, by_arch in cards.items()}
        assert best == pytest.approx(release.reference_best, abs=1e-6)


@pytest.fixture()
def board(tmp_path):
    """A copy of one checked-in entry and its results file: ``(submissions, results)``."""
    submissions = tmp_path / "submissions"
    shutil.copytree(REPO / "submissions" / ENTRY, submissions / ENTRY)
    (submissions / "results").mkdir()
    shutil.copyfile(REPO / "submissions" / "results" / f"{ENTRY}.json", submissions / "results" / f"{ENTRY}.json")
    check_provenance(submissions / "results")  # the real thing passes
    return submissions, submissions / "results"


def _edit(path: Path, change) -> None:
    data = read_json(path)
    change(data)
    atomic_write_json(path, data)


def test_a_hand_written_results_file_without_a_submission_does_not_rank(board, tmp_path, capsys):
    submissions, results = board
    fake = read_json(results / f"{ENTRY}.json")
    fake["entry"] = "totally-sota"
    fake["aggregate"]["invariance_consistency"].update(mean=0.99, ci_low=0.98, ci_high=0.995)
    atomic_write_json(results / "totally-sota.json", fake)
    with pytest.raises(IntegrityError, match=r"totally-sota\.json: no submission folder"):
        check_provenance(results)
    rc = main(["leaderboard", "--results", str(results), "--markdown", str(tmp_path / "LB.md"),
               "--out", str(tmp_path / "lb")])
    assert rc == 1 and "totally-sota.json: no submission folder" in capsys.readouterr().err
    assert not (tmp_path / "LB.md").exists()


@pytest.mark.parametrize("change, message", [
    (lambda r: r["accuracy_floor"]["MUTAG"].update(reference_best=0.5, threshold=0.45),
     r"accuracy_floor\.MUTAG\.reference_best is 0\.5; the release's is 0\.95"),
    (lambda r: r["release"].update(manifest_sha256="ab" * 32), r"with manifest abababababab is not a release"),
    (lambda r: r["submission"].update(submission_sha256="0" * 64), r"submission\.json has SHA-256 .* scored from 0000"),
    (lambda r: r["submission"]["weights_sha256"]["Cora"].update({"1": "f" * 64}), r"seed-1\.safetensors: SHA-256 .*scored as ffff"),
])
def test_an_edited_results_file_does_not_rank(board, change, message):
    _, results = board
    _edit(results / f"{ENTRY}.json", change)
    with pytest.raises(IntegrityError, match=message):
        check_provenance(results)


def test_retrained_weights_without_re_scoring_do_not_rank(board):
    submissions, results = board
    card = read_json(submissions / ENTRY / "submission.json")
    path = submissions / ENTRY / card["datasets"]["Cora"]["weights"]["0"]["path"]
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    _edit(submissions / ENTRY / "submission.json",
          lambda c: c["datasets"]["Cora"]["weights"]["0"].update(sha256=sha256_file(path)))
    with pytest.raises(IntegrityError, match=r"submission\.json has SHA-256 .*re-run `metamer-bench evaluate"):
        check_provenance(results)


def test_an_unavailable_device_is_one_line_before_any_work(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the refusal is for machines without it")
    assert main(["evaluate", str(REPO / "submissions" / ENTRY), "--device", "cuda", "--out", "/dev/null"]) == 2
    err = capsys.readouterr().err
    assert "device 'cuda' is not available on this machine" in err and "devices: cpu" in err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("layout", ["meta", "sparse_coo"])
def test_meta_and_sparse_predictions_are_refused(layout):
    import torch

    from benchmark.errors import UserError
    from benchmark.evaluate.contract import describe

    tensor = torch.empty(3, 1, 7, device="meta") if layout == "meta" else torch.zeros(3, 1, 7).to_sparse()
    with pytest.raises(UserError, match=rf"predictions\.outputs\['r0'\]: a {layout} tensor"):
        describe({"type": "logits", "seeds": [0], "outputs": {"r0": tensor}})
