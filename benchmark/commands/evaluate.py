"""``metamer-bench evaluate``: score a submission on a frozen release and write its results file.

Exit 1 when the run fails on existing inputs (the submission is refused at intake, the release
fails its hashes), 2 when the entry folder or the release cannot be found. Several entries are
scored one after the other, or with ``--executor ray`` as one Ray task each
(:mod:`benchmark.executors.ray_evaluate`), each results file written as its entry finishes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmark.commands import RELEASE_HELP

NAME = "evaluate"
SUMMARY = "Score a submission on a release; write its results file."
HELP = ("Validate and score submissions/<entry> on a frozen release; writes submissions/results/<entry>.json "
        "(scores with 95% bootstrap CIs, cross-architecture rows, release manifest hash).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from benchmark.metrics.scores import DEFAULT_BOOTSTRAP

    parser.add_argument("entry", type=Path, nargs="+",
                        help="submission folder(s), e.g. submissions/gcn-baseline (several: each gets its results file)")
    parser.add_argument("--release", type=Path, default=None,
                        help=RELEASE_HELP)
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
    parser.add_argument("--json", action="store_true",
                        help='print one JSON document {"ok": true, "results_file", "result"} on stdout (the summary '
                             "lines and the progress bars go to stderr)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars (on stderr)")
    parser.add_argument("--no-reverse", action="store_true",
                        help="forward scores only: skip the reverse direction (metamers of the submitted model "
                             "judged by the release's reference panel), which runs on releases whose manifest "
                             "states it (v2) and takes minutes")
    parser.add_argument("--reverse-budget", type=float, default=None, metavar="SECONDS",
                        help="the reverse direction's budget in CPU seconds, all seeds together (default "
                             "600: 10 minutes of a 2-core CPU, DESIGN 4); a run projected over it stops, its "
                             "finished seeds cached; 0: measure without a limit")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local (default): score in this process; ray: one Ray task per entry (optional extra: "
                             'pip install -e ".[ray]"), results identical to local')
    parser.add_argument("--address", default=None, metavar="HOST:PORT",
                        help="Ray cluster for --executor ray (default: start a local Ray instance); entries and "
                             "release must lie at the same paths on every node")


def run(args: argparse.Namespace) -> int:
    from benchmark.evaluate import results_path, write_results
    from benchmark.scoring import evaluate_submission
    import torch

    from benchmark.commands import as_check, existing_dir
    from benchmark.devices import check_device
    from benchmark.release.locate import resolve_release

    if args.threads < 1:
        from benchmark.errors import UserError

        raise UserError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    from benchmark.executors import check_executor

    check_executor(args.executor, args.address)
    entries = args.entry
    if len(entries) > 1 or args.executor == "ray":
        return _run_many(args, entries)
    entry = entries[0]
    existing_dir(entry, "submission folder")
    check_device(args.device)  # an unavailable --device is a bad option value (exit 2), not a failed run
    release = resolve_release(args.release)
    with as_check():  # from here on the inputs exist: a refusal or a failed hash fails the run
        # --reproduce recomputes every seed: a cached seed would make it compare a file with itself.
        result = evaluate_submission(entry, release, num_bootstrap=args.bootstrap, device=args.device,
                                     progress=not args.no_progress, **_reverse_options(args))
    if args.reproduce:  # compare with the recorded file instead of writing it (README, "Reproducibility")
        from benchmark.reproduce import report_reproduction

        return report_reproduction(result, args.out if args.out is not None else results_path(entry), args.json)
    out = write_results(result, args.out if args.out is not None else results_path(entry))
    if args.json:
        print(json.dumps({"ok": True, "results_file": str(out), "result": result}, indent=2, sort_keys=True))
    _summary(result, out, sys.stderr if args.json else sys.stdout)
    return 0


def _reverse_options(args: argparse.Namespace) -> dict:
    """``evaluate_submission``'s reverse-direction keywords from the options (checked)."""
    from benchmark.errors import UserError
    from benchmark.evaluate.reverse import REVERSE_BUDGET_S

    budget = REVERSE_BUDGET_S if args.reverse_budget is None else args.reverse_budget
    if budget < 0:
        raise UserError(f"--reverse-budget must be >= 0 CPU seconds (0: no limit), got {args.reverse_budget}")
    return {"reverse": not args.no_reverse, "reverse_budget_s": budget or None, "reverse_cache": not args.reproduce}


def _run_many(args: argparse.Namespace, entries: list[Path]) -> int:
    """Several entries, or any with --executor ray: each scored and its results file written."""
    from benchmark.commands import as_check, existing_dir
    from benchmark.devices import check_device
    from benchmark.errors import UserError
    from benchmark.release.locate import resolve_release

    refused = [name for name, on in (("--out", args.out is not None), ("--reproduce", args.reproduce),
                                     ("--json", args.json)) if on]
    if refused:
        raise UserError(f"{', '.join(refused)} take(s) one entry in this process; with several entries or "
                        "--executor ray each results file goes to results/<entry>.json next to its entry")
    for entry in entries:
        existing_dir(entry, "submission folder")
    if args.executor == "local" or args.address is None:
        check_device(args.device)
    release = resolve_release(args.release)
    if args.executor == "ray":
        if args.no_reverse or args.reverse_budget is not None:
            raise UserError("--no-reverse and --reverse-budget apply to the local executor; a Ray task runs both "
                            "directions with the default budget")
        from benchmark.executors.ray_cluster import import_ray
        from benchmark.executors.ray_evaluate import evaluate_with_ray

        import_ray(local=args.address is None)  # a missing extra is a usage error (exit 2), not a failed run
        with as_check():
            evaluate_with_ray(entries, release, num_bootstrap=args.bootstrap, device=args.device,
                              threads=args.threads, address=args.address,
                              on_result=lambda result, out: _summary(result, out, sys.stdout))
        return 0
    from benchmark.evaluate import results_path, write_results
    from benchmark.scoring import evaluate_submission

    for entry in entries:
        with as_check():
            result = evaluate_submission(entry, release, num_bootstrap=args.bootstrap, device=args.device,
                                         progress=not args.no_progress, **_reverse_options(args))
        _summary(result, write_results(result, results_path(entry)), sys.stdout)
    return 0


def _summary(result: dict, out: Path, say) -> None:
    agg = result["aggregate"]

    def fmt(name: str) -> str:
        return fmt_interval(name, agg[name])

    def fmt_interval(name: str, s: dict) -> str:
        if s["mean"] is None:
            return f"{name} n/a"
        ci = "" if s["ci_low"] is None else f" [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"
        return f"{name} {s['mean']:.3f} +- {s['std']:.3f}{ci}"

    print(f"{result['entry']} on {result['release']['name']} {result['release']['version']}: "
          + "; ".join(fmt(n) for n in ("invariance_consistency", "transfer", "metamer_acc", "clean_acc")), file=say)
    for row in result.get("reverse", {}).get("by_stage", []):
        print(f"reverse {row['dataset']} {row['kind']} {row['stage']} (L{row['layer']}): "
              + "; ".join(fmt_interval(n, row["scores"][n]) for n in ("recognisability", "consistency",
                                                                      "metamer_validity")), file=say)
    if "reverse" in result:
        timing = result["reverse"]["timing"]
        budget = "no budget" if timing["budget_s"] is None else f"budget {timing['budget_s']:.0f} s"
        print(f"reverse direction: {timing['cpu_s']:.1f} CPU s ({timing['compute_s']:.1f} s wall) over "
              f"{len(timing['seed_cpu_s'])} seeds ({budget})", file=say)
    failed = sorted(d for d, v in result["accuracy_floor"].items() if not v["passed"])
    if failed:
        print(f"below the accuracy floor on {', '.join(failed)}: listed, not ranked", file=say)
    print(f"results: {out} ({result['wall_s']:.1f} s)", file=say)
