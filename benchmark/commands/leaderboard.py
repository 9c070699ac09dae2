"""``metamer-bench leaderboard``: rebuild LEADERBOARD.md, leaderboard/index.html, .json and plots."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "leaderboard"
SUMMARY = "Rank scored entries; write LEADERBOARD.md and leaderboard/."
HELP = ("Rank scored submissions (submissions/results/*.json) per release; write LEADERBOARD.md and "
        "leaderboard/ (HTML, JSON, PNG plots). Refuses results files not tied to their submission folder "
        "and a known release. --check: exit 1 if they are stale.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=Path("submissions/results"),
                        help="folder of results files (default: submissions/results)")
    parser.add_argument("--markdown", type=Path, default=Path("LEADERBOARD.md"),
                        help="Markdown output (default: LEADERBOARD.md)")
    parser.add_argument("--out", type=Path, default=Path("leaderboard"),
                        help="folder for index.html, leaderboard.json and the PNG plots (default: leaderboard)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and list the files that are stale or missing")
    parser.add_argument("--check-plots", action="store_true",
                        help="with --check, compare PNG bytes too (they depend on the matplotlib build)")
    parser.add_argument("--release", type=Path, action="append", default=None,
                        help="release folder whose chance and reference rows to (re)compute into <results>/panels/ "
                             "(repeatable; default: the shipped release, only when its board has none yet)")


def run(args: argparse.Namespace) -> int:
    from benchmark.errors import UserError
    from benchmark.leaderboard import check_outputs, refresh_panels, render_all, write_outputs
    from benchmark.leaderboard.provenance import check_provenance

    # The default results folder may not exist before the first submission is scored; an
    # explicitly named one must.
    default_results = args.results == Path("submissions/results")
    if args.results.is_dir():
        # Only results produced by scoring a submission of a known release may rank (provenance.py);
        # a refused file is an IntegrityError (exit 1), an unreadable one a UserError (exit 2).
        check_provenance(args.results)
    if args.check and args.release:
        raise UserError("--check writes nothing, so it cannot compute panels; drop --release or --check")
    if not args.check:
        # Without --release, a missing panel of the shipped release is filled in, so that a plain
        # `metamer-bench leaderboard` after re-scoring regenerates everything.
        refresh_panels(args.results, args.release, force=bool(args.release))
    outputs = render_all(args.results, args.markdown, args.out, allow_missing=default_results)
    if args.check:
        problems = check_outputs(outputs, args.out, compare_plots=args.check_plots, results_dir=args.results)
        if problems:
            print("leaderboard is stale; run `metamer-bench leaderboard` and commit the result:", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            return 1
        print(f"leaderboard is up to date ({len(outputs)} files)")
        return 0
    changed = write_outputs(outputs, args.out, results_dir=args.results)
    print(f"leaderboard: {len(outputs)} files, {len(changed)} changed")
    for path in changed:
        print(f"  {path}")
    return 0
