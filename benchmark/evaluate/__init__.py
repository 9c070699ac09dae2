"""Scoring on a frozen release: one job per module, and their public names re-exported here.

    from benchmark.evaluate import Evaluator, results_document, write_results

- :mod:`~benchmark.evaluate.units`: which units a set is scored on; each metamer matched with its
  near and far twin on the units where all three are valid (unit matching).
- :mod:`~benchmark.evaluate.contract`: the predictions input (``eval_predictions``,
  ``score-predictions``): its JSON Schema per release, loading and checking it.
- :mod:`~benchmark.evaluate.inference`: running models (one per seed) on the release's records.
- :mod:`~benchmark.evaluate.results`: the results file, ``submissions/results/<entry>.json``.
- :mod:`~benchmark.evaluate.evaluator`: the thin :class:`Evaluator`, outputs in, scores out
  (OGB's ``Evaluator.eval``).
- :mod:`~benchmark.evaluate.reverse`: the reverse direction (scores v2): metamers of the submitted
  model at its stages, judged by the release's reference panel; per-seed cache and budget.

Why a package: the evaluator did these five jobs in one 773-line module, and scores v2 rewrites
the units and the scores while the contract, inference and results file stay. Nothing here reads
a submission folder: scoring one end to end (intake, then this package) is
:func:`benchmark.scoring.evaluate_submission`.
"""
from benchmark.evaluate.contract import load_predictions
from benchmark.evaluate.evaluator import CROSS_SCORES, DIGITS, Evaluator
from benchmark.evaluate.results import (
    EVALUATOR_VERSION,
    RESULTS_DIR,
    results_document,
    results_path,
    write_results,
)

__all__ = ["CROSS_SCORES", "DIGITS", "EVALUATOR_VERSION", "RESULTS_DIR", "Evaluator", "load_predictions",
           "results_document", "results_path", "write_results"]
