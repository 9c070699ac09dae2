"""What the README's "Reproducibility" section promises, tested: weights, scores, a clean tree.

Statements about another CPU are tested on whatever CPU runs the suite; CI reruns the
``precision``-marked tests under ``ATEN_CPU_CAPABILITY=default`` (PyTorch's scalar kernels), so
every CI run checks them on a second kernel family as well.
"""
from __future__ import annotations

import copy
import hashlib
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from benchmark.cli import main
from benchmark.files import read_json
from benchmark.reproduce import SCORE_ATOL, WEIGHT_ATOL, compare_results

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data_cards" / "v1"
RESULTS = REPO / "submissions" / "results" / "gcn-baseline.json"


@pytest.fixture(scope="module")
def recorded() -> dict:
    return read_json(RESULTS)


def test_a_results_file_reproduces_itself_and_every_volatile_field_is_ignored(recorded):
    report = compare_results(copy.deepcopy(recorded), recorded)
    assert report.ok and report.compared > 500 and report.max_abs_diff == 0
    fresh = copy.deepcopy(recorded)
    fresh["wall_s"] += 100
    fresh["hardware"] = {"machine": "arm64", "cpu_count": 128}
    fresh["library_versions"]["torch"] = "2.14.0+cpu"
    fresh["aggregate"]["transfer"]["mean"] += SCORE_ATOL / 2
    report = compare_results(fresh, recorded)
    assert report.ok, report.differences
    assert report.max_abs_diff == pytest.approx(SCORE_ATOL / 2)
    assert report.notes == [f"library_versions differ: torch recorded {recorded['library_versions']['torch']}, "
                            "fresh 2.14.0+cpu"]


@pytest.mark.parametrize("change, named", [
    (lambda r: r["aggregate"]["transfer"].__setitem__("mean", r["aggregate"]["transfer"]["mean"] + 2 * SCORE_ATOL),
     "aggregate.transfer.mean: recorded"),
    (lambda r: r["sets"][3]["scores"]["metamer_acc"].__setitem__("ci_low", None), "sets[3].scores.metamer_acc.ci_low"),
    (lambda r: r["accuracy_floor"]["Cora"].__setitem__("passed", False), "accuracy_floor.Cora.passed: recorded True"),
    (lambda r: r["sets"][0].__setitem__("num_units", r["sets"][0]["num_units"] + 1), "sets[0].num_units"),
    (lambda r: r["sets"].pop(), "sets: recorded "),
    (lambda r: r["release"].pop("manifest_sha256"), "release.manifest_sha256: recorded"),
    (lambda r: r["release"].__setitem__("version", "1.0.1"), "release.version: recorded '1.0.0', fresh '1.0.1'"),
])
def test_every_field_beyond_tolerance_is_named(recorded, change, named):
    fresh = copy.deepcopy(recorded)
    change(fresh)
    report = compare_results(fresh, recorded)
    assert not report.ok
    assert len(report.differences) == 1 and report.differences[0].startswith(named), report.differences
    assert "does NOT reproduce" in report.summary()


@pytest.mark.precision
def test_retraining_a_shipped_reference_matches_its_checkpoint_within_weight_atol(cora, trained_gcn):
    """README: retraining Cora/gcn seed 0 gives the shipped weights within WEIGHT_ATOL, same epochs
    and accuracies (the same SHA-256 on the kernel family that wrote it, AVX2)."""
    from benchmark.checkpoints import load_checkpoint
    from benchmark.models import default_config

    shipped, card = load_checkpoint(SHIPPED / "checkpoints" / "Cora" / "gcn")
    assert card["seed"] == 0 and shipped.config == default_config("gcn", cora.num_features, cora.num_classes)
    model, metrics = trained_gcn  # train_model(cora, default gcn config, seed=0): what built the release
    assert metrics["train_config"] == card["metrics"]["train_config"]
    want, got = shipped.state_dict(), model.state_dict()
    assert want.keys() == got.keys()
    worst = max(float((want[k] - got[k]).abs().max()) for k in want)
    assert worst <= WEIGHT_ATOL, f"retrained weights differ from the shipped ones by up to {worst:.3g}"
    assert (metrics["best_epoch"], metrics["epochs"]) == (card["metrics"]["best_epoch"], card["metrics"]["epochs"])
    for part in ("train_acc", "val_acc", "test_acc"):
        assert metrics[part] == pytest.approx(card["metrics"][part], abs=1e-6), part


def _readme_main_command() -> list[str]:
    """The ``metamer-bench evaluate`` of the README's Quickstart code block, as argv."""
    readme = (REPO / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = quickstart.split("```bash", 1)[1].split("```", 1)[0]
    for line in block.splitlines():
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words[:2] == ["metamer-bench", "evaluate"]:
                return words[1:]
    raise AssertionError("the README's Quickstart has no metamer-bench evaluate command")


def _tree_state() -> tuple[str, str]:
    """``git status --porcelain`` of the checkout (when it is one) and the hash of the tracked results file."""
    status = ""
    if shutil.which("git") and (REPO / ".git").exists():
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, check=True,
                                capture_output=True, text=True).stdout
    return status, hashlib.sha256(RESULTS.read_bytes()).hexdigest()


@pytest.mark.slow
def test_the_readme_main_command_rescored_reproduces_and_leaves_the_tree_clean(monkeypatch, capsys):
    """README's main command: re-score gcn-baseline on v1, compare with the checked-in results
    within SCORE_ATOL, write nothing (issue 16: it used to rewrite a tracked file)."""
    argv = _readme_main_command()
    assert "--reproduce" in argv
    monkeypatch.chdir(REPO)
    before = _tree_state()
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0, capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)  # evaluate sets its --threads for the process
    out = capsys.readouterr().out
    assert out.startswith("reproduces ") and f"{Path('submissions/results/gcn-baseline.json')}: " in out, out
    assert _tree_state() == before
