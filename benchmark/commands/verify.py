"""``metamer-bench verify [RELEASE_DIR]``: re-hash every file and recompute the recorded validity."""
from __future__ import annotations

import argparse
import sys

NAME = "verify"
HELP = "Re-check a release: SHA-256 of every file, schemas, and validity recomputed from the reference checkpoints."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("release", nargs="?", default=None, help="release folder (default: the shipped data_cards/v1)")


def run(args: argparse.Namespace) -> int:
    from benchmark.release.verify import verify_release

    report = verify_release(args.release)
    if report.ok:
        print(f"OK: {report.checked_files} files hashed, {report.checked_sets} sets recomputed")
        return 0
    print(f"FAILED: {len(report.problems)} problem(s)", file=sys.stderr)
    for problem in report.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1
