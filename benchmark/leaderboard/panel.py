"""Chance and reference rows of a release's board, computed from the release itself.

A leaderboard number means little without two anchors: what a model that ignores its input scores
(chance) and what the release's own reference models score on their own metamers (the reference
panel). Both are scored by the evaluator's own code (``Evaluator.score_probabilities``) on every
frozen set of the release, so every quirk of a score (the selection effect that lifts
``transfer`` above 1, IC's 0.5 for constant models) shows in the anchors exactly as it does for
the entries:

* ``chance-uniform``: each prediction an independent uniform draw over the dataset's classes
  (three seeded draws, ``torch.Generator`` seed 0..2), expected accuracy ``1 / num_classes``;
* ``chance-majority``: always the most frequent class among the dataset's scored units (its
  distinct originals' test nodes or test graphs), from the release's class counts;
* ``reference-panel``: each frozen set scored by the checkpoint that generated it (``R`` scoring
  its own metamers, one training seed); the set scores are averaged like an entry's. By the
  validity rule (``R``'s prediction is unchanged on a valid metamer) its metamer disagreement is
  0, so its IC is at most 0.5: the value of a model that shares ``R``'s invariances exactly.

``compute_panel(release_dir)`` loads the release once (about a minute on a 2-core machine) and
returns a JSON-ready document; the leaderboard reads it from
``<results>/panels/<release slug>.json`` (never ranked, labelled on every view). It is a pure
function of the release bytes: same release, same bytes.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.errors import UserError
from benchmark.files import read_json

if TYPE_CHECKING:
    from benchmark.release.opened import Release

PANEL_FORMAT = "metamer-bench-panel"
PANEL_FORMAT_VERSION = 1
PANELS_DIR = "panels"  # inside the results folder; load_results only reads the folder's top level
PANEL_BOOTSTRAP = 200  # replicates for the anchors' CIs: they are context, not ranked
UNIFORM_SEEDS = (0, 1, 2)
ROW_LABELS = {
    "chance-uniform": "chance: uniform guess",
    "chance-majority": "chance: majority class",
    "reference-panel": "reference panel (R on its own metamers)",
}
ROW_ROLES = {"chance-uniform": "chance", "chance-majority": "chance", "reference-panel": "reference"}
ROW_NOTES = {
    "chance-uniform": "each prediction an independent uniform draw over the dataset's classes (3 seeded draws); "
                      "expected accuracy 1/classes, IC 0.5",
    "chance-majority": "always the most frequent class among the dataset's scored units; IC exactly 0.5",
    "reference-panel": "each set scored by the reference checkpoint that generated it (1 seed); "
                       "metamer disagreement 0 by the validity rule, so IC <= 0.5",
}


def panel_path(results_dir: str | os.PathLike, slug: str) -> Path:
    """Where the panel of the release with ``slug`` lives (``<results>/panels/<slug>.json``)."""
    return Path(results_dir) / PANELS_DIR / f"{slug}.json"


def _unit_labels(frozen_sets) -> dict[str, list[int]]:
    """Labels of every distinct scored unit per dataset (test nodes of node tasks, test graphs)."""
    # Each set stores its own copy of an original (ids differ per set); a unit is the same graph
    # of the same dataset, so originals are told apart by (dataset, graph index).
    seen: set[tuple[str, int]] = set()
    labels: dict[str, list[int]] = {}
    for frozen in sorted(frozen_sets, key=lambda s: s.key):
        for original in frozen.originals:
            if (frozen.dataset, original.graph_index) in seen:
                continue
            seen.add((frozen.dataset, original.graph_index))
            if frozen.task == "node":
                values = original.y[original.target.bool()].tolist()
            else:
                values = original.y.view(-1)[:1].tolist()
            labels.setdefault(frozen.dataset, []).extend(int(v) for v in values)
    return labels


def _mean_over_sets(sets: list[dict]) -> dict[str, dict]:
    """An aggregate as the entries' (mean over the sets where a score is defined); no CI, no std."""
    names = sorted({name for s in sets for name in s["scores"]})
    out = {}
    for name in names:
        values = [s["scores"][name]["mean"] for s in sets if s["scores"][name]["mean"] is not None]
        mean = round(math.fsum(values) / len(values), 6) if values else None
        out[name] = {"mean": mean, "std": None, "ci_low": None, "ci_high": None}
    return out


def compute_panel(release_dir: Release | str | os.PathLike, datasets: list[str] | None = None,
                  num_bootstrap: int = PANEL_BOOTSTRAP) -> dict:
    """The chance and reference rows of the release in ``release_dir`` (see the module docstring).

    ``datasets`` restricts the panel to some datasets (tests); the leaderboard uses the full one.
    """
    import torch

    from benchmark.checkpoints import load_checkpoint
    from benchmark.evaluate import Evaluator
    from benchmark.release.opened import Release

    release = Release.open(release_dir)
    root = release.root
    identity = release.identity
    if datasets is None:
        sets = release.load_sets()
    else:
        sets = [s for d in sorted(set(datasets)) for s in release.load_sets(dataset=d)]
    if not sets:
        raise UserError(f"{root}: no frozen sets for datasets {datasets}")
    names = sorted({s.dataset for s in sets})
    num_classes = {d: release.dims[d].num_classes for d in names}
    reference_acc = {d: release.reference_best(d)[0] for d in names}
    labels = _unit_labels(sets)
    class_counts = {d: [Counter(labels[d])[c] for c in range(num_classes[d])] for d in names}
    # Ties go to the lowest class id, as argmax does.
    majority = {d: max(range(num_classes[d]), key=lambda c: (class_counts[d][c], -c)) for d in names}

    evaluator = Evaluator(sets, reference_acc=reference_acc, num_classes=num_classes, release_info=identity,
                          num_bootstrap=num_bootstrap)
    rows = {}
    outputs = {rid: (r.num_nodes if evaluator.tasks[evaluator._dataset_of[rid]] == "node" else 1)
               for rid, r in evaluator.records.items()}
    probs = {}
    for rid in sorted(outputs):
        dataset = evaluator._dataset_of[rid]
        p = torch.zeros(1, outputs[rid], num_classes[dataset], dtype=torch.float64)
        p[..., majority[dataset]] = 1.0
        probs[rid] = p
    rows["chance-majority"] = evaluator.score_probabilities(probs, [0], "chance-majority")
    probs = {}
    for rid in sorted(outputs):
        dataset = evaluator._dataset_of[rid]
        draws = []
        for seed in UNIFORM_SEEDS:
            # One generator per (record, seed): a record's draw does not depend on which other
            # records the release holds.
            gen = torch.Generator().manual_seed(seed * 1_000_003 + sum(rid.encode()) * 7919 + len(rid))
            choice = torch.randint(num_classes[dataset], (outputs[rid],), generator=gen)
            draws.append(torch.nn.functional.one_hot(choice, num_classes[dataset]).double())
        probs[rid] = torch.stack(draws)
    rows["chance-uniform"] = evaluator.score_probabilities(probs, list(UNIFORM_SEEDS), "chance-uniform")

    # Reference panel: originals are shared by the sets of a dataset, so each checkpoint scores
    # only its own sets, through an evaluator of those sets.
    checkpoint_of = {s["key"]: s["checkpoint"] for s in release.sets}
    by_checkpoint: dict[str, list] = {}
    for frozen in sets:
        by_checkpoint.setdefault(checkpoint_of[frozen.key], []).append(frozen)
    panel_sets = []
    for checkpoint in sorted(by_checkpoint):
        model, _ = load_checkpoint(root / checkpoint)
        own = Evaluator(by_checkpoint[checkpoint], reference_acc=reference_acc, num_classes=num_classes,
                        release_info=identity, num_bootstrap=num_bootstrap)
        with torch.no_grad():
            scored = own.eval([model], seeds=[0])
        panel_sets += scored["sets"]
    panel_sets.sort(key=lambda s: s["key"])
    rows["reference-panel"] = {"sets": panel_sets, "aggregate": _mean_over_sets(panel_sets)}

    out_rows = []
    for entry in sorted(rows):
        scored = rows[entry]
        out_rows.append({"entry": entry, "label": ROW_LABELS[entry], "role": ROW_ROLES[entry],
                         "note": ROW_NOTES[entry], "aggregate": scored["aggregate"],
                         "sets": [{k: s[k] for k in ("key", "dataset", "reference_model", "kind", "layer", "scores")}
                                  for s in scored["sets"]]})
    return {"format": PANEL_FORMAT, "format_version": PANEL_FORMAT_VERSION, "release": identity,
            "num_bootstrap": num_bootstrap, "num_classes": num_classes, "class_counts": class_counts,
            "majority_class": majority, "reference_acc": {d: round(a, 6) for d, a in reference_acc.items()},
            "rows": out_rows}


def read_panel(path: str | os.PathLike) -> dict:
    """A panel file, checked for its format (a stale or foreign file is an error naming it)."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != PANEL_FORMAT:
        raise UserError(f"{path}: not a {PANEL_FORMAT} file (regenerate it with `metamer-bench leaderboard "
                        "--release <release folder>`)")
    if data.get("format_version") != PANEL_FORMAT_VERSION:
        raise UserError(f"{path}: panel format_version {data.get('format_version')!r}, this code reads "
                        f"{PANEL_FORMAT_VERSION}; regenerate it with `metamer-bench leaderboard --release <folder>`")
    return data
