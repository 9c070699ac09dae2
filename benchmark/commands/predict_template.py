"""``metamer-bench predict-template``: write the records and shapes a predictions file must cover.

Exit 2 when the release cannot be found; the template is ``<out>/template.json``
(:mod:`benchmark.predictions` documents its fields and the predictions file it describes).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands import RELEASE_HELP

NAME = "predict-template"
SUMMARY = "Write the records and shapes a predictions file must cover."
HELP = ("Write <out>/template.json: the release identity, each dataset's task and class count, and every record "
        "to predict with its output shape [num_outputs, num_classes]. The graphs come from "
        "benchmark.predictions.prediction_inputs(release); write the file with "
        "benchmark.predictions.write_predictions and score it with `metamer-bench score-predictions`.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--release", type=Path, default=None, help=RELEASE_HELP)
    parser.add_argument("--out", type=Path, required=True, help="folder to write template.json into")
    parser.add_argument("--dataset", action="append", default=None,
                        help="only this dataset (repeatable; default: every dataset of the release)")


def run(args: argparse.Namespace) -> int:
    from benchmark.evaluate import Evaluator
    from benchmark.predictions import write_template
    from benchmark.release.locate import resolve_release

    evaluator = Evaluator(resolve_release(args.release), datasets=args.dataset, num_bootstrap=1)
    path = write_template(evaluator, args.out)
    print(f"template: {path} ({len(evaluator.records)} records, datasets {', '.join(evaluator.datasets)})")
    return 0
