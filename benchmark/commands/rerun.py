"""``metamer-bench rerun``: retrain a submission with the project's recipe; the tier follows from the outcome.

Writes ``submissions/reruns/<entry>.json`` (see :mod:`benchmark.rerun`); the leaderboard shows
``re-run`` only for an entry whose record matched and is tied to the hashes its results were
scored from. ``--check`` retrains and compares with the record instead of writing it (CI).
Exit 0 when every retrained model matches (or the record holds), 1 when a model does not match
(the record is still written and says so) or a record does not hold, 2 when the entry or the
record to check cannot be found.
"""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "rerun"
SUMMARY = "Retrain an entry; record whether its weights match (tier)."
HELP = ("Retrain every weights file of submissions/<entry> with the project's recipe (benchmark.training, the "
        "card's model config, seeds and adversarial settings) and compare with the submitted weights within "
        "benchmark.reproduce.WEIGHT_ATOL; writes submissions/reruns/<entry>.json, from which the leaderboard "
        "derives the tier (re-run only when every model matched).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("entry", type=Path, help="submission folder, e.g. submissions/gcn-baseline")
    parser.add_argument("--out", type=Path, default=None,
                        help="rerun record (default: reruns/<entry>.json next to the entry folder)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing: retrain and check that the existing record holds (same card and "
                             "weights hashes, no claimed match that retraining does not give); exit 1 if not")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: the weights are byte-reproducible per kernel family)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar (on stderr)")


def run(args: argparse.Namespace) -> int:
    import torch

    from benchmark.commands import as_check, existing_dir
    from benchmark.errors import UserError
    from benchmark.rerun import rerun_or_fail, rerun_path

    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    existing_dir(args.entry, "submission folder")
    record = args.out if args.out is not None else rerun_path(args.entry)
    if args.check and not record.is_file():
        raise UserError(f"no rerun record to check at {record}; run `metamer-bench rerun {args.entry}` to write one")
    torch.set_num_threads(args.threads)
    with as_check():
        fresh, path = rerun_or_fail(args.entry, record, check=args.check, progress=not args.no_progress)
    runs = sum(len(s) for s in fresh["runs"].values())
    if args.check:
        print(f"{path} holds: {runs} models retrained ({fresh['wall_s']:.0f} s)")
    else:
        print(f"{fresh['entry']}: {runs} retrained models match the submitted weights within "
              f"{fresh['weight_atol']:g}: tier re-run; record: {path} ({fresh['wall_s']:.0f} s)")
    return 0
