"""Leaderboard page: column docs, chance and reference rows (panel), views, plots' data, links."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.files import atomic_write_json
from benchmark.leaderboard import COLUMNS, build_boards, check_outputs, parse_html, parse_result, render_all
from benchmark.leaderboard.panel import ROW_LABELS, compute_panel, panel_path
from benchmark.leaderboard.plots import breakdown_data, scatter_data, split_outliers
from benchmark.leaderboard.ranking import SCORE_NAMES, ReleaseKey
from benchmark.leaderboard.views import COLUMNS_DOC, transfer_note, view_data

from test_leaderboard import RELEASE, interval, result, write_results

REPO = Path(__file__).resolve().parents[1]


def panel_doc(release: dict = RELEASE, ic_ref: float = 0.49) -> dict:
    """A panel file as compute_panel writes it, for the fixture results' sets (Cora, MUTAG x gcn, gat)."""
    def sets(ic: float, metamer: float, clean: float) -> list[dict]:
        return [{"key": f"{d}/{r}/{k}/L1", "dataset": d, "reference_model": r, "kind": k, "layer": 1,
                 "scores": {name: interval(0.5) for name in SCORE_NAMES} | {
                     "invariance_consistency": interval(ic), "metamer_acc": interval(metamer),
                     "clean_acc": interval(clean)}}
                for d in ("Cora", "MUTAG") for r in ("gat", "gcn") for k in ("feature", "structure")]

    def row(entry: str, role: str, ic: float, metamer: float, clean: float) -> dict:
        return {"entry": entry, "label": ROW_LABELS[entry], "role": role, "note": f"{entry} note",
                "aggregate": {name: interval(0.5) for name in SCORE_NAMES} | {
                    "invariance_consistency": {"mean": ic, "std": None, "ci_low": None, "ci_high": None},
                    "metamer_acc": interval(metamer), "clean_acc": interval(clean)},
                "sets": sets(ic, metamer, clean)}

    return {"format": "metamer-bench-panel", "format_version": 1, "release": dict(release),
            "rows": [row("chance-majority", "chance", 0.5, 0.3, 0.4), row("chance-uniform", "chance", 0.5, 0.2, 0.2),
                     row("reference-panel", "reference", ic_ref, 0.84, 0.8)]}


@pytest.fixture()
def results_dir(tmp_path):
    folder = write_results(tmp_path / "submissions" / "results", [
        result("gcn-baseline", 0.71, half=0.02), result("gat-baseline", 0.69, half=0.02), result("mlp-baseline", 0.52),
        result("weak", 0.9, clean={"Cora": 0.3, "MUTAG": 0.7})])
    slug = ReleaseKey(**RELEASE).slug
    atomic_write_json(panel_path(folder, slug), panel_doc())
    return folder


def render(tmp_path, results_dir):
    return render_all(results_dir, tmp_path / "LEADERBOARD.md", tmp_path / "leaderboard")


# ---------------------------------------------------------------- columns

def test_every_column_has_a_definition_and_every_score_a_direction_and_a_metrics_anchor():
    metrics = (REPO / "METRICS.md").read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', metrics))
    assert [c.title for c in COLUMNS_DOC] == list(COLUMNS)
    for column in COLUMNS_DOC:
        assert len(column.definition) > 20, column.key
        if column.key in SCORE_NAMES:
            # The direction agrees with METRICS.md's score table ("| better |" column).
            line = next(l for l in metrics.splitlines() if f'id="score-{column.key}"' in l)
            assert f"| {column.better} |" in line or f"| {column.better} (" in line, (column.key, line[:80])
        if column.anchor:
            assert column.anchor in anchors, f"METRICS.md has no anchor {column.anchor!r}"
    assert {c.key for c in COLUMNS_DOC} >= set(SCORE_NAMES)


def test_page_defines_each_column_and_links_paper_code_and_metrics(tmp_path, results_dir):
    outputs = render(tmp_path, results_dir)
    page = outputs[tmp_path / "leaderboard" / "index.html"].decode()
    md = outputs[tmp_path / "LEADERBOARD.md"].decode()
    for column in COLUMNS_DOC:
        assert f'data-column="{column.key}"' in page
        if column.anchor:
            assert f'href="../METRICS.md#{column.anchor}"' in page and f"(METRICS.md#{column.anchor})" in md
    for text in (page, md):
        assert "https://arxiv.org/abs/2510.17378" in text and "https://doi.org/10.1038/s41593-023-01442-0" in text
    assert '<a href="../submissions/gcn-baseline/">gcn-baseline</a>' in page
    assert "[gcn-baseline](submissions/gcn-baseline/)" in md
    assert "<script" in page and "http://" not in page.split("<body>")[0]  # no CDN, nothing fetched


def test_code_and_paper_urls_of_a_submission_are_linked(tmp_path):
    r = result("linked", 0.6)
    r["submission"].update(code_url="https://example.org/code", paper_url="https://example.org/paper")
    folder = write_results(tmp_path / "results", [r])
    page = render(tmp_path, folder)[tmp_path / "leaderboard" / "index.html"].decode()
    assert '<a href="https://example.org/code">code</a>' in page and '<a href="https://example.org/paper">paper</a>' in page


# ---------------------------------------------------------------- chance and reference rows

def test_chance_and_reference_rows_are_shown_labelled_and_never_ranked(tmp_path, results_dir):
    outputs = render(tmp_path, results_dir)
    parsed = parse_html(outputs[tmp_path / "leaderboard" / "index.html"].decode())
    board = json.loads(outputs[tmp_path / "leaderboard" / "leaderboard.json"])["releases"][0]
    assert [r["entry"] for r in parsed["rows"]] == ["gcn-baseline", "gat-baseline", "mlp-baseline", "weak"]
    assert [(a["entry"], a["cells"][0], a["cells"][1]) for a in parsed["anchors"]] == [
        ("chance-majority", "chance", "chance: majority class"), ("chance-uniform", "chance", "chance: uniform guess"),
        ("reference-panel", "reference", "reference panel (R on its own metamers)")]
    assert [a["entry"] for a in board["anchors"]] == ["chance-majority", "chance-uniform", "reference-panel"]
    assert all("rank" not in a for a in board["anchors"]) and [r["rank"] for r in board["rows"]] == [1, 1, 3, None]
    ref = parsed["anchors"][2]["cells"]
    assert ref[COLUMNS.index("IC ± 95% CI")] == "0.490"  # no CI for the panel: one checkpoint per set
    md = outputs[tmp_path / "LEADERBOARD.md"].decode()
    assert "| *reference* | *reference panel (R on its own metamers)* | *0.490* |" in md
    # The transfer note reads its numbers from the rows: entries 0.33 < 1 here, so no note.
    assert "Reading transfer:" not in md


def test_without_a_panel_the_board_says_how_to_make_one(tmp_path):
    folder = write_results(tmp_path / "results", [result("a", 0.6)])
    outputs = render(tmp_path, folder)
    assert b"No chance or reference rows for this release yet" in outputs[tmp_path / "LEADERBOARD.md"]
    assert parse_html(outputs[tmp_path / "leaderboard" / "index.html"].decode())["anchors"] == []


def test_panel_of_another_manifest_is_refused(tmp_path):
    folder = write_results(tmp_path / "results", [result("a", 0.6)])
    atomic_write_json(panel_path(folder, ReleaseKey(**RELEASE).slug), panel_doc({**RELEASE, "manifest_sha256": "cd" * 32}))
    with pytest.raises(UserError, match="panel of manifest cdcd"):
        render(tmp_path, folder)


def test_panel_of_a_release_without_results_is_stale_and_removed(tmp_path, results_dir, capsys,
                                                                    synthetic_results_rank):
    other = {**RELEASE, "version": "0.9.0"}
    orphan = panel_path(results_dir, ReleaseKey(**other).slug)
    atomic_write_json(orphan, panel_doc(other))
    args = ["leaderboard", "--results", str(results_dir), "--markdown", str(tmp_path / "LEADERBOARD.md"),
            "--out", str(tmp_path / "leaderboard")]
    assert main(args) == 0 and not orphan.exists()  # writing removes it
    atomic_write_json(orphan, panel_doc(other))
    capsys.readouterr()
    assert main([*args, "--check"]) == 1
    assert "panel of a release no results file is scored on" in capsys.readouterr().err


def test_transfer_note_explains_values_above_one_from_the_reference_row():
    results = []
    for name, t in (("a", 1.10), ("b", 1.15)):
        r = result(name, 0.6)
        r["aggregate"]["transfer"] = interval(t)
        results.append(r)
    rows = [parse_result(copy.deepcopy(r), r["entry"]) for r in results]
    (board,) = build_boards(rows)
    assert transfer_note(board).startswith("Reading transfer: every entry scores above 1 (1.100 to 1.150).")
    assert "reference row" not in transfer_note(board)


@pytest.fixture(scope="module")
def mutag_panel():
    """The panel of the shipped release's MUTAG sets, computed from the release (about 30 s)."""
    release = REPO / "data_cards" / "v1"
    if not (release / "MANIFEST.json").is_file():
        pytest.fail("the shipped release data_cards/v1 is missing")
    return compute_panel(release, datasets=["MUTAG"])


def test_panel_rows_follow_from_the_release(mutag_panel):
    from benchmark.release import Release
    from benchmark.release import load_frozen_sets

    rows = {r["entry"]: r for r in mutag_panel["rows"]}
    assert set(rows) == set(ROW_LABELS) and mutag_panel["num_classes"] == {"MUTAG": 2}
    # Class counts: the labels of the distinct test graphs, counted here independently.
    labels = {}
    for frozen in load_frozen_sets(REPO / "data_cards" / "v1", verify=False, dataset="MUTAG"):
        for original in frozen.originals:
            labels[original.graph_index] = int(original.y.view(-1)[0])
    counts = [sum(1 for v in labels.values() if v == c) for c in (0, 1)]
    assert mutag_panel["class_counts"] == {"MUTAG": counts}
    majority = max((0, 1), key=lambda c: (counts[c], -c))
    assert mutag_panel["majority_class"] == {"MUTAG": majority}
    for s in rows["chance-majority"]["sets"]:
        assert s["scores"]["clean_acc"]["mean"] == pytest.approx(counts[majority] / sum(counts), abs=1e-6)
        assert s["scores"]["invariance_consistency"]["mean"] in (None, 0.5)  # constant model: IC exactly 0.5
    # The reference panel: each set scored by its own checkpoint, whose clean accuracy on the
    # set's originals is the test accuracy its card records.
    cards = Release.open(REPO / "data_cards" / "v1").reference_cards["MUTAG"]
    for s in rows["reference-panel"]["sets"]:
        assert s["scores"]["clean_acc"]["mean"] == pytest.approx(cards[s["reference_model"]]["metrics"]["test_acc"],
                                                                 abs=1e-6), s["key"]
        ic = s["scores"]["invariance_consistency"]["mean"]
        assert ic is None or ic <= 0.5  # R never disagrees with itself on a valid metamer
    uniform = rows["chance-uniform"]["aggregate"]["clean_acc"]
    assert uniform["ci_low"] <= 0.5 <= uniform["ci_high"]  # 1/2 classes, within its CI


# ---------------------------------------------------------------- views and plots' data

def test_views_group_the_per_set_rows_generically():
    r = result("a", 0.6)
    values = {"Cora/gcn/feature/L1": 0.7, "Cora/gat/feature/L1": 0.5, "MUTAG/gcn/structure/L1": 0.9}
    for s in r["sets"]:
        if s["key"] in values:
            s["scores"]["invariance_consistency"] = interval(values[s["key"]])
    extra = copy.deepcopy(r["sets"][0])  # a second stage of Cora/gat: v2 adds layers
    extra.update(key="Cora/gat/feature/L3", reference_model="gat", layer=3)
    extra["scores"]["invariance_consistency"] = interval(0.1)
    r["sets"].append(extra)
    (board,) = build_boards([parse_result(r, "a.json")])
    views = view_data(board)
    assert views["dataset"]["groups"] == ["Cora", "MUTAG"] and views["kind"]["groups"] == ["feature", "structure"]
    assert views["stage"]["groups"] == ["Cora/gat/L1", "Cora/gat/L3", "Cora/gcn/L1", "MUTAG/gat/L1", "MUTAG/gcn/L1"]
    ic = {v: dict(zip(views[v]["groups"], views[v]["scores"]["invariance_consistency"]["a"])) for v in views}
    assert ic["stage"]["Cora/gat/L3"] == 0.1 and ic["stage"]["Cora/gcn/L1"] == pytest.approx((0.7 + 0.6) / 2)
    assert ic["dataset"]["Cora"] == pytest.approx((0.7 + 0.6 + 0.5 + 0.6 + 0.1) / 5)
    assert ic["kind"]["structure"] == pytest.approx((0.6 * 3 + 0.9) / 4)


def test_page_has_a_sortable_table_per_view_and_score(tmp_path, results_dir):
    parsed = parse_html(render(tmp_path, results_dir)[tmp_path / "leaderboard" / "index.html"].decode())
    tables = {(r["view"], r["score"]) for r in parsed["view_rows"]}
    assert tables == {(v, s) for v in ("dataset", "kind", "stage") for s in SCORE_NAMES}
    cora = [r for r in parsed["view_rows"] if r["view"] == "dataset" and r["score"] == "invariance_consistency"]
    assert [r["entry"] for r in cora][:2] == ["gcn-baseline", "gat-baseline"] and cora[0]["cells"][1] == "0.710"
    assert [r["entry"] for r in cora if r["anchor"]] == ["chance-majority", "chance-uniform", "reference-panel"]
    assert [h["key"] for h in parsed["headers"]][:3] == ["rank", "entry", "invariance_consistency"]


def test_scatter_zooms_on_the_bulk_and_keeps_outliers_in_the_overview():
    results = [result(f"e{i}", 0.52 + 0.001 * i) for i in range(8)] + [result("far", 0.6)]
    results[-1]["aggregate"]["clean_acc"] = interval(0.3)
    rows = [parse_result(copy.deepcopy(r), r["entry"]) for r in results]
    (board,) = build_boards(rows)
    bulk, outliers = split_outliers(scatter_data(board))
    assert [p["entry"] for p in outliers] == ["far"] and len(bulk) == 8


def test_breakdown_has_a_value_per_dataset_kind_and_entry(tmp_path, results_dir):
    rows = [parse_result(json.loads(p.read_text()), p.name) for p in sorted(results_dir.glob("*.json"))]
    (board,) = build_boards(rows, results_dir)
    data = breakdown_data(board)
    assert data["datasets"] == ["Cora", "MUTAG"] and data["kinds"] == ["feature", "structure"]
    assert data["ic"]["Cora"]["feature"][data["entries"].index("gcn-baseline")] == pytest.approx(0.71)
    assert set(data["anchors"]) == {"chance: majority class", "reference panel (R on its own metamers)"}


def test_outputs_with_a_panel_are_deterministic_and_pass_check(tmp_path, results_dir):
    first, second = render(tmp_path, results_dir), render(tmp_path, results_dir)
    assert first == second and len(first) == 3 + 3
    from benchmark.leaderboard import write_outputs

    write_outputs(first, tmp_path / "leaderboard", results_dir)
    assert check_outputs(first, tmp_path / "leaderboard", compare_plots=True, results_dir=results_dir) == []


def test_check_cannot_compute_panels_and_unused_releases_get_none(tmp_path, results_dir, capsys):
    assert main(["leaderboard", "--check", "--release", str(REPO / "data_cards" / "v1")]) == 2
    assert "--check writes nothing" in capsys.readouterr().err
    from benchmark.leaderboard import refresh_panels

    # No results file is scored on the shipped release here: nothing to compute, nothing written.
    assert refresh_panels(results_dir, [REPO / "data_cards" / "v1"], force=True) == []
    assert sorted(p.name for p in (results_dir / "panels").iterdir()) == [f"{ReleaseKey(**RELEASE).slug}.json"]
