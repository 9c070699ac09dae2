"""``metamer-bench score-predictions``: check and score a predictions file; write a prediction-only results file.

Exit 1 when the file is refused (header, shapes, dtypes, NaN/Inf, coverage), 2 when it or the
release cannot be found or an option is malformed. The results file is marked
``prediction_only: true``: forward-direction scores only, tier ``self-reported``
(:mod:`benchmark.predictions`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmark.commands import RELEASE_HELP

NAME = "score-predictions"
SUMMARY = "Score a predictions file; write prediction-only results."
HELP = ("Check PRED.safetensors against the release (every record id, shapes [num_seeds, num_outputs, "
        "num_classes], float dtypes, finite values; from the header before any tensor is read), score it and "
        "write submissions/results/<name>.json marked prediction_only (forward-direction scores only). It ranks "
        "once submissions/<name>/predictions.safetensors holds the same file.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from benchmark.metrics.scores import DEFAULT_BOOTSTRAP

    parser.add_argument("predictions", type=Path, help="predictions file (.safetensors, see predict-template)")
    parser.add_argument("--name", required=True, help="entry name (1-64 of [A-Za-z0-9._-]); names the results file")
    parser.add_argument("--release", type=Path, default=None, help=RELEASE_HELP)
    parser.add_argument("--dataset", action="append", default=None,
                        help="score only this dataset (repeatable; for trying the route: only a results file "
                             "covering every dataset of the release ranks)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default: submissions/results/<name>.json)")
    parser.add_argument("--display-name", default=None, help="name shown on the board (default: --name)")
    parser.add_argument("--author", action="append", default=None, help="author (repeatable; default anonymous)")
    parser.add_argument("--model", default=None,
                        help="architecture label (default: the file's 'model' metadata, else 'custom')")
    parser.add_argument("--num-parameters", type=int, default=0, help="parameter count, self-reported (0: not stated)")
    parser.add_argument("--paper-url", default=None, help="paper URL")
    parser.add_argument("--code-url", default=None, help="code URL")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP,
                        help=f"bootstrap replicates for the 95%% CIs (default {DEFAULT_BOOTSTRAP})")
    parser.add_argument("--reproduce", action="store_true",
                        help="write nothing: re-score the predictions with the card fields recorded in the results file "
                             "(--out or the default) and check it reproduces within benchmark.reproduce.SCORE_ATOL, wall "
                             "time and hardware aside; exit 0 if it does, 1 (naming every field that differs) if not")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON document {"ok": true, "results_file", "result"} on stdout')


def run(args: argparse.Namespace) -> int:
    import torch

    from benchmark.commands import as_check
    from benchmark.errors import UserError
    from benchmark.evaluate import Evaluator, write_results
    from benchmark.metrics.scores import check_bootstrap
    from benchmark.predictions import PREDICTIONS_FILE, score_predictions
    from benchmark.release.locate import resolve_release

    torch.set_num_threads(1)
    if not args.predictions.is_file():
        raise UserError(f"predictions file {args.predictions} does not exist")
    check_bootstrap(args.bootstrap)
    target = args.out if args.out is not None else Path("submissions/results") / f"{args.name}.json"
    card = {"display_name": args.display_name, "authors": args.author or ["anonymous"], "model": args.model,
            "num_parameters": args.num_parameters, "paper_url": args.paper_url, "code_url": args.code_url}
    if args.reproduce:  # the submitter's fields come from the recorded file: only the scores are re-derived
        from benchmark.files import read_json

        if not target.is_file():
            raise UserError(f"no results file to reproduce at {target}; run score-predictions without --reproduce first")
        recorded = read_json(target)["submission"]
        card = {"display_name": recorded["name"], "authors": recorded["authors"], "model": recorded["architecture"],
                "num_parameters": recorded["num_parameters"], "paper_url": recorded.get("paper_url"),
                "code_url": recorded.get("code_url")}
    evaluator = Evaluator(resolve_release(args.release), datasets=args.dataset, num_bootstrap=args.bootstrap)
    with as_check():
        result = score_predictions(args.predictions, args.name, evaluator=evaluator, **card)
    if args.reproduce:
        from benchmark.reproduce import report_reproduction

        return report_reproduction(result, target, args.json)
    out = write_results(result, target)
    if args.json:
        print(json.dumps({"ok": True, "results_file": str(out), "result": result}, indent=2, sort_keys=True))
    say = sys.stderr if args.json else sys.stdout
    agg = result["aggregate"]
    print(f"{args.name} (prediction-only, forward direction) on {result['release']['name']} "
          f"{result['release']['version']}: IC {agg['invariance_consistency']['mean']}, clean_acc "
          f"{agg['clean_acc']['mean']}", file=say)
    print(f"results: {out}; it ranks once submissions/{args.name}/{PREDICTIONS_FILE} holds this predictions file "
          f"(SHA-256 {result['submission']['predictions_sha256'][:12]})", file=say)
    return 0
