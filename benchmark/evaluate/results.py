"""The results file: ``submissions/results/<entry>.json``, one writer for every way of scoring.

:func:`results_document` assembles it from a ``submission`` block (what was scored: a registry
model's card fields, exported programs, or a predictions file), the release identity the scores
are bound to, the evaluator and library versions, and the scores of :meth:`Evaluator.eval` (or
``eval_predictions`` / ``eval_programs``). Both the assembled document and the file written are
checked against ``benchmark/schemas/result.schema.json``, the contract the leaderboard reads back
(:func:`benchmark.leaderboard.ranking.parse_result`).

Why one writer: registry submissions, exported programs and prediction-only scoring used to
build this document in two places that drifted; a field added here reaches every results file.
Apart from ``wall_s`` (and ``hardware``), the same inputs give the same bytes on one CPU kernel
family (:mod:`benchmark.reproduce` compares them across machines).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from benchmark.files import atomic_write_json
from benchmark.schemas import check_schema

# The scoring rules' version, stamped on every results file. 2.0.0: unit-matched forward scores
# (matched_clean_acc; transfer on matched units), the IC candidates of issue 12.3, per kind x stage and
# reference x kind x stage aggregates, no CI below MIN_UNITS units.
EVALUATOR_VERSION = "2.0.0"
RESULTS_DIR = "results"
SCORE_KEYS = ("bootstrap", "sets", "aggregate", "clean_acc_by_dataset", "accuracy_floor", "cross_architecture",
              "by_kind_stage", "cross_architecture_by_stage")


def results_path(entry_dir: str | os.PathLike) -> Path:
    """``submissions/<entry>`` -> ``submissions/results/<entry>.json``."""
    entry_dir = Path(entry_dir).resolve()
    return entry_dir.parent / RESULTS_DIR / f"{entry_dir.name}.json"


def results_document(entry: str, submission: dict, evaluator, scores: dict, start: float, **extra) -> dict:
    """The results file of ``entry``: its ``submission`` block, the release identity of ``evaluator``,
    the versions and the ``scores`` of :meth:`Evaluator.eval` (or ``eval_predictions``), schema-checked.

    ``extra`` top-level keys (``prediction_only=True``) go in as given; ``wall_s`` counts from ``start``.
    """
    from benchmark.versions import hardware, library_versions

    result = {
        "entry": entry,
        **extra,
        "submission": submission,
        "release": dict(evaluator.release_info),
        "evaluator_version": EVALUATOR_VERSION,
        "library_versions": library_versions(),
        "hardware": hardware(),
        **{name: scores[name] for name in SCORE_KEYS},
    }
    result["wall_s"] = round(time.perf_counter() - start, 2)
    check_schema(result, "result", "result", "results document does not match result.schema.json")
    return result


def write_results(result: dict, path: str | os.PathLike) -> Path:
    """Validate ``result`` against its schema and write it atomically as canonical JSON."""
    check_schema(result, "result", "result", "results document does not match result.schema.json")
    path = Path(path)
    atomic_write_json(path, result)
    return path
