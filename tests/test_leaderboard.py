"""Leaderboard: ranking rules, rendering determinism, --check, and the HTML's rows."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.errors import IntegrityError, UserError
from benchmark.files import atomic_write_json
from benchmark.leaderboard import (
    COLUMNS, SCORE_NAMES, build_boards, check_outputs, load_results, parse_html, parse_result, render_all, write_outputs,
)
from benchmark.leaderboard.plots import heatmap_data

from benchmark.metrics.scores import SCORE_NAMES as ALL_SCORES  # every score the evaluator writes

REPO = Path(__file__).resolve().parents[1]
RELEASE = {"name": "v1", "version": "1.0.0", "manifest_sha256": "ab" * 32}


def interval(mean: float, half: float = 0.01, std: float = 0.005) -> dict:
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def result(entry: str, ic: float, half: float = 0.01, clean: dict | None = None, release: dict | None = None,
           refs: tuple[str, ...] = ("gcn", "gat"), tier: str = "re-run") -> dict:
    """A results object in the evaluator's shape; reference best clean accuracy is 0.8 on Cora, 0.7 on MUTAG."""
    clean = clean or {"Cora": 0.8, "MUTAG": 0.7}
    best = {"Cora": 0.8, "MUTAG": 0.7}
    floor = {d: {"reference_best": best[d], "threshold": 0.9 * best[d], "passed": clean[d] >= 0.9 * best[d]}
             for d in clean}
    cross = [{"dataset": d, "kind": k, "reference_model": r, "metamer_acc": 0.3 + 0.1 * i + 0.05 * j,
              "transfer": 0.2 + 0.1 * i}
             for d in sorted(clean) for j, k in enumerate(("feature", "structure")) for i, r in enumerate(refs)]
    sets = [{"key": f"{c['dataset']}/{c['reference_model']}/{c['kind']}/L1", "dataset": c["dataset"],
             "reference_model": c["reference_model"], "kind": c["kind"], "layer": 1,
             "scores": {name: interval(0.5) for name in ALL_SCORES} | {"invariance_consistency": interval(ic)}}
            for c in cross]
    return {
        "entry": entry,
        "submission": {"name": entry, "authors": ["metamer-bench"], "architecture": entry.split("-")[0],
                       "num_parameters": 23063, "seeds": [0, 1, 2], "tier": tier},
        "release": dict(release or RELEASE), "evaluator_version": "0.1.0",
        "library_versions": {"torch": "2.13.0"}, "hardware": {"machine": "x86_64", "cpu_count": 2}, "wall_s": 12.5,
        "bootstrap": {"replicates": 200, "level": 0.95, "seed": 0},
        "sets": sets,
        "aggregate": {"clean_acc": interval(sum(clean.values()) / len(clean)), "metamer_acc": interval(0.4),
                      "near_acc": interval(0.79), "far_acc": interval(0.2), "transfer": interval(0.33),
                      "invariance_consistency": interval(ic, half), "ic_spearman": interval(0.5)}
                     | {name: interval(0.5) for name in ALL_SCORES if name not in SCORE_NAMES},
        "clean_acc_by_dataset": clean, "accuracy_floor": floor, "cross_architecture": cross,
        "by_kind_stage": [], "cross_architecture_by_stage": [],
    }


def write_results(folder: Path, results: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for r in results:
        atomic_write_json(folder / f"{r['entry']}.json", r)
    return folder


def board_of(results: list[dict]):
    rows = [parse_result(copy.deepcopy(r), f"{r['entry']}.json") for r in results]
    (board,) = build_boards(rows)
    return board


def ranks(board) -> list[tuple[str, int | None]]:
    return [(row.entry, row.rank) for row in board.rows]


# ---------------------------------------------------------------- ranking

def test_rank_groups_follow_ci_overlap_with_the_group_leader():
    board = board_of([
        result("a", 0.80, half=0.02),   # leader of group 1: [0.78, 0.82]
        result("b", 0.79, half=0.02),   # overlaps a -> rank 1
        result("c", 0.74, half=0.035),  # [0.705, 0.775] overlaps b but not a -> new group, rank 3
        result("d", 0.60, half=0.01),   # rank 4
    ])
    assert ranks(board) == [("a", 1), ("b", 1), ("c", 3), ("d", 4)]
    assert [row.group for row in board.rows] == [1, 1, 2, 3]


def test_identical_scores_tie_on_rank_and_sort_by_name():
    board = board_of([result("zeta", 0.7), result("alpha", 0.7), result("mid", 0.9)])
    assert ranks(board) == [("mid", 1), ("alpha", 2), ("zeta", 2)]


def test_entry_below_accuracy_floor_is_listed_not_ranked():
    low = result("weak", 0.95, clean={"Cora": 0.70, "MUTAG": 0.7})  # 0.70 < 0.9 * 0.8 = 0.72
    board = board_of([low, result("ok", 0.6)])
    assert ranks(board) == [("ok", 1), ("weak", None)]  # best IC, still not ranked
    weak = board.rows[1]
    assert weak.floor_failures == ["Cora"]
    assert weak.floor_note() == "below accuracy floor: Cora 0.700 < 0.720"


def test_floor_verdict_that_contradicts_the_numbers_is_refused():
    bad = result("cheat", 0.9, clean={"Cora": 0.5, "MUTAG": 0.7})
    bad["accuracy_floor"]["Cora"]["passed"] = True
    with pytest.raises(IntegrityError, match="accuracy_floor.Cora.passed"):
        parse_result(bad, "cheat.json")
    bad = result("cheat", 0.9)
    bad["accuracy_floor"]["Cora"]["threshold"] = 0.1
    with pytest.raises(IntegrityError, match="threshold"):
        parse_result(bad, "cheat.json")


def test_releases_are_never_mixed():
    other = {"name": "v1", "version": "1.1.0", "manifest_sha256": "cd" * 32}
    rehashed = {**RELEASE, "manifest_sha256": "ef" * 32}
    rows = [parse_result(r, r["entry"]) for r in
            (result("a", 0.5), result("b", 0.9, release=other), result("c", 0.7), result("d", 0.8, release=rehashed))]
    boards = build_boards(rows)
    assert [(b.release.version, b.release.manifest_sha256[:2]) for b in boards] == [("1.1.0", "cd"), ("1.0.0", "ab"),
                                                                                     ("1.0.0", "ef")]
    assert [ranks(b) for b in boards] == [[("b", 1)], [("c", 1), ("a", 2)], [("d", 1)]]


def test_version_order_is_numeric():
    rows = [parse_result(result(f"e{v}", 0.5, release={**RELEASE, "version": v}), "x") for v in ("1.9.0", "1.10.0")]
    assert [b.release.version for b in build_boards(rows)] == ["1.10.0", "1.9.0"]


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("aggregate"), "results: 'aggregate' is a required property"),
    (lambda r: r["aggregate"].pop("transfer"), "results.aggregate: 'transfer' is a required property"),
    (lambda r: r["aggregate"]["invariance_consistency"].update(mean=None), "must be a finite number"),
    (lambda r: r["aggregate"]["invariance_consistency"].update(mean=2.0), "outside its CI"),
    (lambda r: r["submission"].update(tier="trusted"), "results.submission.tier: 'trusted' is not one of"),
    (lambda r: r["release"].update(manifest_sha256="xyz"), "results.release.manifest_sha256"),
    (lambda r: r.update(accuracy_floor={}), "accuracy_floor is empty"),
])
def test_malformed_results_name_the_file_and_key(mutate, message):
    r = result("x", 0.5)
    mutate(r)
    with pytest.raises(UserError, match=message) as info:
        parse_result(r, "x.json")
    assert str(info.value).startswith("x.json")


def test_null_secondary_scores_render_as_na(tmp_path):
    r = result("x", 0.5)
    r["aggregate"]["transfer"] = {"mean": None, "std": None, "ci_low": None, "ci_high": None}
    write_results(tmp_path / "results", [r])
    outputs = render_all(tmp_path / "results", tmp_path / "LEADERBOARD.md", tmp_path / "leaderboard")
    row = parse_html(outputs[tmp_path / "leaderboard" / "index.html"].decode())["rows"][0]
    assert row["cells"][COLUMNS.index("transfer")] == "n/a"


def test_duplicate_entry_on_one_release_is_refused(tmp_path):
    folder = write_results(tmp_path / "results", [result("a", 0.5)])
    atomic_write_json(folder / "a-copy.json", result("a", 0.6))
    with pytest.raises(UserError, match="both hold entry 'a'"):
        load_results(folder)


# ---------------------------------------------------------------- rendering

@pytest.fixture()
def results_dir(tmp_path):
    return write_results(tmp_path / "submissions" / "results", [
        result("gcn-baseline", 0.71, half=0.02), result("gat-baseline", 0.69, half=0.02),
        result("mlp-baseline", 0.52), result("weak", 0.9, clean={"Cora": 0.3, "MUTAG": 0.7}),
        result("gcn-next", 0.66, release={"name": "v1", "version": "1.1.0", "manifest_sha256": "cd" * 32}),
    ])


def render(tmp_path, results_dir):
    return render_all(results_dir, tmp_path / "LEADERBOARD.md", tmp_path / "leaderboard")


def test_render_is_byte_deterministic(tmp_path, results_dir):
    first, second = render(tmp_path, results_dir), render(tmp_path, results_dir)
    assert first.keys() == second.keys() and len(first) == 3 + 2 * 3
    assert all(first[p] == second[p] for p in first)  # PNGs included


def test_wall_time_and_hardware_do_not_change_the_output(tmp_path, results_dir):
    before = render(tmp_path, results_dir)
    path = results_dir / "gcn-baseline.json"
    data = json.loads(path.read_text())
    data.update(wall_s=999.0, hardware={"machine": "elsewhere"}, library_versions={"torch": "9"})
    atomic_write_json(path, data)
    assert render(tmp_path, results_dir) == before


def test_html_table_matches_the_ranking(tmp_path, results_dir):
    outputs = render(tmp_path, results_dir)
    page = parse_html(outputs[tmp_path / "leaderboard" / "index.html"].decode())
    board = json.loads(outputs[tmp_path / "leaderboard" / "leaderboard.json"])
    expected = [(rel["slug"], row["entry"], "" if row["rank"] is None else str(row["rank"]))
                for rel in board["releases"] for row in rel["rows"]]
    assert [(r["release"], r["entry"], r["rank"]) for r in page["rows"]] == expected
    assert expected[0][0].startswith("v1-1.1.0-cdcdcdcd")  # newest version first
    v100 = [r for r in page["rows"] if r["release"].startswith("v1-1.0.0")]
    assert [(r["entry"], r["rank"]) for r in v100] == [("gcn-baseline", "1"), ("gat-baseline", "1"),
                                                       ("mlp-baseline", "3"), ("weak", "")]
    gcn = v100[0]["cells"]
    assert len(gcn) == len(COLUMNS)
    assert gcn[COLUMNS.index("IC ± 95% CI")] == "0.710 [0.690, 0.730]"
    assert gcn[COLUMNS.index("params")] == "23,063" and gcn[COLUMNS.index("seeds")] == "3"
    # The results claim re-run; no rerun record retrained them, so the board derives self-reported.
    assert gcn[COLUMNS.index("tier")] == "self-reported" and gcn[COLUMNS.index("evaluator")] == "0.1.0"
    assert v100[3]["cells"][0] == "below floor" and not v100[3]["ranked"]
    assert sorted(page["images"]) == sorted(p.name for p in outputs if p.suffix == ".png")


def test_exported_program_entries_carry_the_custom_label(tmp_path):
    """An entry scored from exported programs (issue 14.5) shows its architecture marked '(custom)' in
    every output; a registry entry shows the zoo name; a prediction-only one is labelled by its tier."""
    custom = result("skipgcn-x", 0.70)
    custom["submission"].update(format="torch.export", stages=["conv1"], architecture="skipgcn", tier="self-reported")
    preds = result("preds-y", 0.60, tier="self-reported")
    preds["prediction_only"] = True
    preds["submission"]["predictions_sha256"] = "ef" * 32
    results_dir = write_results(tmp_path / "submissions" / "results", [custom, preds, result("gcn-baseline", 0.65)])
    outputs = render(tmp_path, results_dir)
    page = parse_html(outputs[tmp_path / "leaderboard" / "index.html"].decode())
    cells = {r["entry"]: r["cells"] for r in page["rows"]}
    column = COLUMNS.index("architecture")
    assert cells["skipgcn-x"][column] == "skipgcn (custom)"
    assert cells["gcn-baseline"][column] == "gcn"
    assert cells["preds-y"][column] == "preds" and cells["preds-y"][COLUMNS.index("tier")] == "prediction-only"
    rows = {r["entry"]: r for r in json.loads(outputs[tmp_path / "leaderboard" / "leaderboard.json"])["releases"][0]["rows"]}
    assert {e: r["origin"] for e, r in rows.items()} == {"skipgcn-x": "custom", "gcn-baseline": "zoo",
                                                         "preds-y": "predictions"}
    assert "| skipgcn (custom) |" in outputs[tmp_path / "LEADERBOARD.md"].decode()
    assert 'data-arch="skipgcn (custom)"' in outputs[tmp_path / "leaderboard" / "index.html"].decode()


def test_markdown_has_one_table_per_release(tmp_path, results_dir):
    text = render(tmp_path, results_dir)[tmp_path / "LEADERBOARD.md"].decode()
    assert text.count("| rank | entry | IC ± 95% CI ↑ |") == 2
    assert "## Release v1 1.1.0" in text and "## Release v1 1.0.0" in text
    assert "| 3 | [mlp-baseline](submissions/mlp-baseline/) | 0.520 [0.510, 0.530] |" in text
    assert "- `weak`: below accuracy floor: Cora 0.300 < 0.720" in text
    assert "](leaderboard/heatmap-v1-1.0.0-abababab.png)" in text


def test_heatmap_averages_metamer_accuracy_over_datasets():
    board = board_of([result("a", 0.5, refs=("gcn", "gat")), result("b", 0.4, refs=("gcn",))])
    data = heatmap_data(board)
    assert data["reference_models"] == ["gat", "gcn"] and data["kinds"] == ["feature", "structure"]
    # a: gcn is refs[0] -> 0.3 (+0.05 for structure); gat refs[1] -> 0.4; b lacks gat.
    assert data["metamer_acc"]["feature"] == [[0.4, 0.3], [None, 0.3]]
    assert data["metamer_acc"]["structure"] == [[0.45, 0.35], [None, 0.35]]


def test_empty_results_render_a_placeholder(tmp_path):
    outputs = render_all(tmp_path / "absent", tmp_path / "LEADERBOARD.md", tmp_path / "lb", allow_missing=True)
    assert len(outputs) == 3 and b"No scored submissions yet" in outputs[tmp_path / "LEADERBOARD.md"]
    with pytest.raises(UserError, match="results folder not found"):
        render_all(tmp_path / "absent", tmp_path / "LEADERBOARD.md", tmp_path / "lb")


# ---------------------------------------------------------------- --check

def cli(tmp_path, results_dir, *extra):
    return main(["leaderboard", "--results", str(results_dir), "--markdown", str(tmp_path / "LEADERBOARD.md"),
                 "--out", str(tmp_path / "leaderboard"), *extra])


def test_check_passes_when_fresh_and_fails_when_stale(tmp_path, results_dir, capsys, synthetic_results_rank):
    assert cli(tmp_path, results_dir, "--check") == 1  # nothing written yet
    assert "missing" in capsys.readouterr().err
    assert cli(tmp_path, results_dir) == 0
    assert cli(tmp_path, results_dir, "--check", "--check-plots") == 0
    # A re-scored entry changes the ranking inputs: the checked-in files are now stale.
    path = results_dir / "mlp-baseline.json"
    data = json.loads(path.read_text())
    data["aggregate"]["invariance_consistency"] = interval(0.95)
    atomic_write_json(path, data)
    capsys.readouterr()
    assert cli(tmp_path, results_dir, "--check") == 1
    err = capsys.readouterr().err
    assert "LEADERBOARD.md: stale" in err and "leaderboard.json: stale" in err and "index.html: stale" in err
    assert cli(tmp_path, results_dir) == 0 and cli(tmp_path, results_dir, "--check") == 0


def test_check_catches_a_hand_edit_and_a_dropped_release(tmp_path, results_dir, capsys, synthetic_results_rank):
    assert cli(tmp_path, results_dir) == 0
    md = tmp_path / "LEADERBOARD.md"
    md.write_text(md.read_text().replace("mlp-baseline", "mlp-winner"))
    assert cli(tmp_path, results_dir, "--check") == 1
    assert cli(tmp_path, results_dir) == 0
    (results_dir / "gcn-next.json").unlink()  # its release leaves the board; its plots must go
    capsys.readouterr()
    assert cli(tmp_path, results_dir, "--check") == 1
    assert "no longer generated" in capsys.readouterr().err
    assert cli(tmp_path, results_dir) == 0
    assert sorted(p.name for p in (tmp_path / "leaderboard").glob("*1.1.0*")) == []
    assert cli(tmp_path, results_dir, "--check") == 0


def test_unchanged_outputs_are_not_rewritten(tmp_path, results_dir):
    outputs = render(tmp_path, results_dir)
    assert len(write_outputs(outputs, tmp_path / "leaderboard")) == len(outputs)
    assert write_outputs(outputs, tmp_path / "leaderboard") == []
    assert check_outputs(outputs, tmp_path / "leaderboard", compare_plots=True) == []


def test_bad_results_file_is_a_clear_cli_error(tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "broken.json").write_text("{not json")
    assert cli(tmp_path, folder) == 2
    assert "broken.json: not valid JSON" in capsys.readouterr().err


def test_checked_in_leaderboard_is_fresh(monkeypatch):
    """CI's staleness gate (DESIGN 2): LEADERBOARD.md and leaderboard/ match submissions/results
    and its panels; no panel of a release without results lingers."""
    monkeypatch.chdir(REPO)
    assert main(["leaderboard", "--check"]) == 0


# ---------------------------------------------------------------- real browser (when one is installed)

def _browser_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_leaderboard_browser",
                                                  REPO / "scripts" / "check_leaderboard_browser.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_page_in_a_headless_browser(tmp_path, results_dir, synthetic_results_rank):
    """Load the page in Chromium: rows match the JSON, plots load, a screenshot is taken.

    Skipped where no Chromium is installed (CI installs it: `apt-get install -y chromium`).
    """
    script = _browser_script()
    browser = script.find_browser()
    if browser is None:
        pytest.skip("no Chromium on PATH; the parsed-HTML tests above still cover the table")
    assert cli(tmp_path, results_dir) == 0
    page, shot = tmp_path / "leaderboard" / "index.html", tmp_path / "shot.png"
    assert script.check_page(page, page.with_name("leaderboard.json"), shot, browser) == []
    # The check can fail: a page whose plot is gone and whose table lost a row is reported.
    next(page.parent.glob("heatmap-v1-1.0.0-*.png")).unlink()
    text = page.read_text()
    start = text.index('<tr data-entry="mlp-baseline"')
    page.write_text(text[:start] + text[text.index("</tr>", start) + 5:])
    problems = script.check_page(page, page.with_name("leaderboard.json"), shot, browser)
    assert any("differ from" in p for p in problems) and any("1 of 6 plot images failed" in p for p in problems)
