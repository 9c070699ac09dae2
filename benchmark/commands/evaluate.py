"""``metamer-bench evaluate``: score a submission on a frozen release and write its results file."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "evaluate"
HELP = ("Validate and score submissions/<entry> on a frozen release; writes submissions/results/<entry>.json "
        "(scores with 95% bootstrap CIs, cross-architecture rows, release manifest hash).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from benchmark.metrics.scores import DEFAULT_BOOTSTRAP

    parser.add_argument("entry", type=Path, help="submission folder, e.g. submissions/gcn-baseline")
    parser.add_argument("--release", type=Path, default=None,
                        help="release folder or name under data_cards/ (default: the shipped data_cards/v1)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default: results/<entry>.json next to the entry folder)")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP,
                        help=f"bootstrap replicates for the 95%% CIs (default {DEFAULT_BOOTSTRAP})")
    parser.add_argument("--device", default="cpu", help="torch device for inference (default cpu)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: scoring is many small tensor ops; on a busy 2-core "
                             "machine two threads measured 5-8x slower than one, see scripts/bench_evaluate.py)")
    parser.add_argument("--reproduce", action="store_true",
                        help="write nothing: score the entry and check that its results file (--out or the "
                             "default) reproduces within benchmark.reproduce.SCORE_ATOL, wall time and hardware "
                             "aside; exit 0 if it does, 1 (naming every field that differs) if not")


def run(args: argparse.Namespace) -> int:
    from benchmark.evaluate import evaluate_submission, results_path, write_results
    import torch

    from benchmark.release.loader import resolve_release

    if args.threads < 1:
        from benchmark.errors import UserError

        raise UserError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    result = evaluate_submission(args.entry, resolve_release(args.release), num_bootstrap=args.bootstrap, device=args.device,
                                 progress=True)
    if args.reproduce:  # compare with the recorded file instead of writing it (README, "Reproducibility")
        from benchmark.reproduce import reproduce_results_file

        recorded = args.out or results_path(args.entry)
        report = reproduce_results_file(result, recorded)
        print(report.summary(str(recorded)))
        return 0 if report.ok else 1
    out = write_results(result, args.out or results_path(args.entry))
    agg = result["aggregate"]

    def fmt(name: str) -> str:
        s = agg[name]
        if s["mean"] is None:
            return f"{name} n/a"
        ci = "" if s["ci_low"] is None else f" [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"
        return f"{name} {s['mean']:.3f} +- {s['std']:.3f}{ci}"

    print(f"{result['entry']} on {result['release']['name']} {result['release']['version']}: "
          + "; ".join(fmt(n) for n in ("invariance_consistency", "transfer", "metamer_acc", "clean_acc")))
    failed = sorted(d for d, v in result["accuracy_floor"].items() if not v["passed"])
    if failed:
        print(f"below the accuracy floor on {', '.join(failed)}: listed, not ranked")
    print(f"results: {out} ({result['wall_s']:.1f} s)")
    return 0
