"""The leaderboard's tier is derived from what was checked, never the card's word (issue 17.2).

Real data only: the checked-in sgc-baseline entry (trained by scripts/train_baselines.py), its
results file and its rerun record, and a Cora-only copy of it small enough to retrain in seconds.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from benchmark.cli import main
from benchmark.files import atomic_write_json, read_json, sha256_file
from benchmark.leaderboard import load_results
from benchmark.rerun import derived_tier, tier_problems

REPO = Path(__file__).resolve().parents[1]
ENTRY = "sgc-baseline"


def _edit(path: Path, change) -> None:
    data = read_json(path)
    change(data)
    atomic_write_json(path, data)


@pytest.fixture()
def board(tmp_path):
    """A copy of the checked-in sgc-baseline entry and its results file, no rerun record yet."""
    submissions = tmp_path / "submissions"
    shutil.copytree(REPO / "submissions" / ENTRY, submissions / ENTRY)
    (submissions / "results").mkdir()
    shutil.copyfile(REPO / "submissions" / "results" / f"{ENTRY}.json", submissions / "results" / f"{ENTRY}.json")
    return submissions


def test_a_card_saying_re_run_is_shown_self_reported_without_a_matching_record(board, tmp_path, capsys):
    results = board / "results"
    assert read_json(results / f"{ENTRY}.json")["submission"]["tier"] == "re-run"  # the card's claim
    (row,) = load_results(results)
    assert row.tier == "self-reported"
    assert main(["leaderboard", "--results", str(results), "--markdown", str(tmp_path / "LB.md"),
                 "--out", str(tmp_path / "lb")]) == 0
    assert f"[{ENTRY}](" in (tmp_path / "LB.md").read_text()
    assert "| self-reported |" in (tmp_path / "LB.md").read_text() and "| re-run |" not in (tmp_path / "LB.md").read_text()

    # The checked-in record (metamer-bench rerun: 12 models retrained, all matched) makes it re-run.
    record = board / "reruns" / f"{ENTRY}.json"
    record.parent.mkdir()
    shutil.copyfile(REPO / "submissions" / "reruns" / f"{ENTRY}.json", record)
    (row,) = load_results(results)
    assert row.tier == "re-run"

    # ... but only while it is tied to the very hashes the results were scored from, and matched.
    original = record.read_bytes()
    for change, why in [
        (lambda r: r["runs"]["Cora"]["1"].update(weights_sha256="f" * 64), "no matching retraining of Cora seed 1"),
        (lambda r: r["runs"]["Photo"]["2"].update(matched=False), "no matching retraining of Photo seed 2"),
        (lambda r: r["runs"]["MUTAG"]["0"].update(max_abs_diff=0.01), "MUTAG seed 0 differs by 0.01"),
        (lambda r: r.update(matched=False), "the retrained weights did not match"),
        (lambda r: r.update(submission_sha256="0" * 64), "retrained a card with SHA-256 000000000000"),
        (lambda r: r["runs"].pop("CiteSeer"), "no matching retraining of CiteSeer seed 0"),
    ]:
        record.write_bytes(original)
        _edit(record, change)
        result = read_json(results / f"{ENTRY}.json")
        assert derived_tier(result, board) == "self-reported"
        assert any(why in p for p in tier_problems(result, board)), (why, tier_problems(result, board))
        (row,) = load_results(results)
        assert row.tier == "self-reported"


@pytest.fixture(scope="module")
def cora_entry(tmp_path_factory) -> Path:
    """sgc-baseline reduced to Cora (3 seeds): a real submission trained by the project's recipe."""
    folder = tmp_path_factory.mktemp("rerun") / "submissions" / "sgc-cora"
    shutil.copytree(REPO / "submissions" / ENTRY, folder)
    for extra in ("CiteSeer", "MUTAG", "Photo"):
        shutil.rmtree(folder / extra)

    def cora_only(card):
        card["datasets"] = {"Cora": card["datasets"]["Cora"]}
        card["num_parameters"] = 1433 * 7 + 7  # SGC on Cora: one linear layer
    _edit(folder / "submission.json", cora_only)
    return folder


@pytest.fixture()
def entry(cora_entry, tmp_path) -> Path:
    return Path(shutil.copytree(cora_entry, tmp_path / "submissions" / "sgc-cora"))


def _result_of(folder: Path) -> dict:
    """The fields of a results file that tie it to a submission (what evaluate writes)."""
    card = read_json(folder / "submission.json")
    return {"entry": folder.name, "submission": {
        "submission_sha256": sha256_file(folder / "submission.json"),
        "weights_sha256": {d: {s: w["sha256"] for s, w in b["weights"].items()} for d, b in card["datasets"].items()}}}


def test_rerun_retrains_with_the_project_recipe_and_the_tier_follows(entry, capsys):
    submissions = entry.parent
    assert derived_tier(_result_of(entry), submissions) == "self-reported"
    assert main(["rerun", str(entry), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "3 retrained models match the submitted weights within 0.0001: tier re-run" in out
    record = read_json(submissions / "reruns" / "sgc-cora.json")
    assert record["matched"] and record["submission_sha256"] == sha256_file(entry / "submission.json")
    assert all(r["matched"] and r["max_abs_diff"] <= 1e-4 for r in record["runs"]["Cora"].values())
    assert derived_tier(_result_of(entry), submissions) == "re-run"
    assert main(["rerun", str(entry), "--check", "--no-progress"]) == 0
    assert "holds: 3 models retrained" in capsys.readouterr().out


def test_weights_not_from_the_recipe_stay_self_reported_and_a_forged_record_fails_the_check(entry, capsys):
    submissions = entry.parent
    path = entry / "Cora" / "seed-1.safetensors"
    tensors = load_file(path)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1e-3  # trained otherwise: close, but not what the recipe gives
    save_file(tensors, path)
    _edit(entry / "submission.json", lambda c: c["datasets"]["Cora"]["weights"]["1"].update(sha256=sha256_file(path)))

    assert main(["rerun", str(entry), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 of 3 retrained models differ from the submitted weights, so its tier is self-reported" in err
    assert "datasets.Cora.weights.1: retrained weights differ from the submitted ones (max abs difference 0.001" in err
    record_path = submissions / "reruns" / "sgc-cora.json"
    record = read_json(record_path)
    assert not record["matched"] and not record["runs"]["Cora"]["1"]["matched"] and record["runs"]["Cora"]["0"]["matched"]
    assert derived_tier(_result_of(entry), submissions) == "self-reported"

    # A record is a file anyone can write: one claiming a match says re-run until CI re-runs it.
    def forge(r):
        r["matched"] = True
        r["runs"]["Cora"]["1"].update(matched=True, max_abs_diff=0.0)
    _edit(record_path, forge)
    assert derived_tier(_result_of(entry), submissions) == "re-run"
    assert main(["rerun", str(entry), "--check", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "runs.Cora.1: the record claims a match, retraining now differs by 0.001" in err


def test_rerun_errors_name_what_is_missing(entry, tmp_path, capsys):
    assert main(["rerun", str(entry), "--check"]) == 2
    assert "no rerun record to check at" in capsys.readouterr().err
    assert main(["rerun", str(tmp_path / "nowhere")]) == 2
    (entry / "Cora" / "seed-2.safetensors").write_bytes(b"\x80\x04not safetensors")
    assert main(["rerun", str(entry), "--no-progress"]) == 1  # intake refuses it before any training
    assert "seed-2.safetensors" in capsys.readouterr().err


def test_checked_in_rerun_records_tie_to_the_checked_in_entries():
    """Every record in submissions/reruns/ belongs to an entry folder and names its current hashes
    (CI's `rerun --check` then retrains the ones a change adds or modifies)."""
    records = sorted((REPO / "submissions" / "reruns").glob("*.json"))
    assert records
    for path in records:
        record = read_json(path)
        folder = REPO / "submissions" / path.stem
        assert record["entry"] == path.stem and folder.is_dir()
        assert record["submission_sha256"] == sha256_file(folder / "submission.json"), path.name
        card = read_json(folder / "submission.json")
        for dataset, block in card["datasets"].items():
            for seed, item in block["weights"].items():
                assert record["runs"][dataset][seed]["weights_sha256"] == item["sha256"], (path.name, dataset, seed)
