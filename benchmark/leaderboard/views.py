"""Column definitions and the per-dataset, per-kind and per-stage views of a board.

Every column the leaderboard shows has a definition, a direction (higher / lower / neither is
better) and a link to its METRICS.md anchor, kept here once for the Markdown, the HTML and the
JSON. The views are built from the results files' per-set rows alone (``Row.sets``): a group is
the sets sharing a dataset, a kind, or a stage (dataset, reference model, layer), and a cell is
the mean over the entry's sets in that group of one score's per-set mean (the same equal
weighting as the aggregate). A release with more stages, kinds or scores gets more columns without
code changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from benchmark.leaderboard.ranking import SCORE_NAMES, Board
from benchmark.reproduce import WEIGHT_ATOL

METRICS_DOC = "METRICS.md"
PAPERS = (
    ("arXiv:2510.17378 (the seed paper of this benchmark)", "https://arxiv.org/abs/2510.17378"),
    ("Feather, Leclerc, Mądry, McDermott: Model metamers reveal divergent invariances between biological and "
     "artificial neural networks, Nature Neuroscience 26, 2017-2034 (2023)",
     "https://doi.org/10.1038/s41593-023-01442-0"),
)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    better: str  # "higher", "lower", "neither", or "" for descriptive columns
    definition: str
    anchor: str  # METRICS.md anchor ("" = none)


_TRANSFER_NOTE = (
    "Evaluator 2.0.0 computes it on matched units (where the metamer and both twins are valid), so numerator and "
    "denominator describe the same units; results of evaluator 1.x divided by clean_acc over all units, and could "
    "exceed 1 through that selection effect ('Reading transfer' under a board that shows it).")

COLUMNS_DOC = (
    Column("rank", "rank", "", "Competition rank by IC; entries whose 95% CIs overlap their group leader's share a "
           "rank. 'below floor': listed, not ranked (clean accuracy under 90% of the best reference on a dataset). "
           "Chance and reference rows are never ranked.", "ranking"),
    Column("entry", "entry", "", "Submission name; links to its folder (weights, card) and code.", ""),
    Column("invariance_consistency", "IC ± 95% CI", "higher",
           "Invariance consistency: mean of the agreement rate on near twins (same prediction as on the original) "
           "and the disagreement rate on R's metamers. 0.5 for any constant or random model; the primary score.",
           "score-invariance_consistency"),
    Column("ic_spearman", "IC ρ", "higher",
           "Spearman correlation between input similarity and output similarity (1 − JS distance) over metamers, "
           "near and far twins: a graded IC.", "score-ic_spearman"),
    Column("transfer", "transfer", "lower",
           "(metamer_acc − far_acc) / (matched clean_acc − far_acc): the share of R's metamer invariance M shares; 0 = M "
           "treats R's metamers like random input, 1 = fooled like R. " + _TRANSFER_NOTE, "score-transfer"),
    Column("metamer_acc", "metamer_acc", "lower",
           "Accuracy on R's metamers (matched units only): the label survives only through R's invariances.",
           "score-metamer_acc"),
    Column("near_acc", "near_acc", "higher", "Accuracy on near twins (a benign 1% change), matched units only.",
           "score-near_acc"),
    Column("far_acc", "far_acc", "neither",
           "Accuracy on far twins (as far as the metamer, activations not matched), matched units only: the baseline "
           "of transfer, not a goal.", "score-far_acc"),
    Column("clean_acc", "clean_acc", "higher", "Accuracy on the original test units (all units).", "score-clean_acc"),
    Column("num_parameters", "params", "", "Trainable parameters, summed over the entry's per-dataset models.", ""),
    Column("seeds", "seeds", "", "Training seeds scored (mean ± std is over these).", ""),
    Column("architecture", "architecture", "", "The architecture: a zoo (registry) name, or the submitter's label "
           "marked '(custom)' for an entry submitted as exported programs (any architecture, run without its "
           "Python; benchmark/programs.py).", ""),
    Column("tier", "tier", "", "Derived, not claimed: 're-run' when the project's recipe retrained every scored "
           f"weights file and matched it within {WEIGHT_ATOL:g} (submissions/reruns/<entry>.json, checked in CI); "
           "'prediction-only': scored from a predictions file (no model), forward-direction scores only; "
           "'self-reported' otherwise.", ""),
    Column("evaluator", "evaluator", "", "Evaluator version that wrote the results file.", ""),
)
COLUMN_BY_KEY = {c.key: c for c in COLUMNS_DOC}
SCORE_COLUMNS = tuple(c for c in COLUMNS_DOC if c.key in SCORE_NAMES)
VIEWS = (("dataset", "By dataset"), ("kind", "By metamer kind"),
         ("stage", "By stage (dataset / reference model / layer)"))


def transfer_note(board: Board) -> str:
    """Why transfer exceeds 1 on this board, with the numbers that show it ("" when it does not)."""
    means = [r.scores["transfer"].mean for r in board.rows if r.scores["transfer"].mean is not None]
    if not means or min(means) <= 1.0:
        return ""
    text = (f"Reading transfer: every entry scores above 1 ({min(means):.3f} to {max(means):.3f}). This is a "
            "selection artefact of the formula, not more than full sharing of R's invariances: metamer_acc and "
            "far_acc are averaged over the valid units only, clean_acc over all units.")
    ref = next((a for a in board.anchors if a.role == "reference"), None)
    if ref is not None:
        pairs = [(s["scores"].get("metamer_acc"), s["scores"].get("clean_acc")) for s in ref.sets]
        pairs = [(m, c) for m, c in pairs if m is not None and c is not None]
        above = sum(m > c for m, c in pairs)
        text += (" The reference row shows where it comes from: a valid metamer keeps R's prediction, so R's own "
                 "metamer_acc is R's accuracy on the valid units; it exceeds R's clean_acc on all units on "
                 f"{above} of the {len(pairs)} sets where both are defined. The units where R's metamers are valid "
                 "are easier than the average unit.")
    return text


def arrow(better: str) -> str:
    return {"higher": "↑", "lower": "↓", "neither": "·"}.get(better, "")


def group_of(item: dict, view: str) -> str:
    """The column a per-set row falls in for ``view`` ("dataset", "kind" or "stage")."""
    if view == "stage":
        return f"{item['dataset']}/{item['reference_model']}/L{item['layer']}"
    return str(item[view])


def view_groups(board: Board, view: str) -> list[str]:
    """Columns of ``view`` for ``board``: every group any entry or anchor has a set in, sorted."""
    items = [s for row in [*board.rows, *board.anchors] for s in row.sets]
    return sorted({group_of(s, view) for s in items})


def view_value(sets: list[dict], view: str, group: str, score: str) -> float | None:
    """Mean of ``score``'s per-set means over ``sets`` in ``group`` (None where none is defined)."""
    values = [s["scores"].get(score) for s in sets if group_of(s, view) == group]
    values = [v for v in values if v is not None and math.isfinite(v)]
    return round(math.fsum(values) / len(values), 6) if values else None


def view_data(board: Board) -> dict:
    """Every view of ``board`` as JSON-ready data: ``{view: {"groups", "scores": {score: {entry: [v]}}}}``."""
    out = {}
    for view, _ in VIEWS:
        groups = view_groups(board, view)
        rows = [*board.rows, *board.anchors]
        out[view] = {"groups": groups,
                     "scores": {score: {r.entry: [view_value(r.sets, view, g, score) for g in groups] for r in rows}
                                for score in SCORE_NAMES}}
    return out
