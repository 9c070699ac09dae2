"""``metamer-bench verify [RELEASE]``: re-hash every file, check the data against the base datasets
(graphs, labels, splits) and recompute the recorded validity.

Exit 1 when any check fails (every problem is listed), 2 when the release cannot be found.
"""
from __future__ import annotations

import argparse
import json
import sys

from benchmark.commands import RELEASE_HELP

NAME = "verify"
SUMMARY = "Re-check a release: hashes, data, recomputed validity."
HELP = ("Re-check a release: SHA-256 of every file, schemas, base graphs, labels and splits against the base "
        "datasets, and validity recomputed from the reference checkpoints.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("release", nargs="?", default=None, help=RELEASE_HELP)
    parser.add_argument("--json", action="store_true",
                        help='print one JSON document {"ok", "release", "checked_files", "checked_sets", "problems"} '
                             "on stdout (progress stays on stderr)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from benchmark.release.locate import resolve_release
    from benchmark.release.verify import verify_release

    root = resolve_release(args.release)
    report = verify_release(root, progress=not args.no_progress)
    if args.json:
        print(json.dumps({"ok": report.ok, "release": str(root), "checked_files": report.checked_files,
                          "checked_sets": report.checked_sets, "problems": report.problems}, indent=2))
    elif report.ok:
        print(f"OK: {root}: {report.checked_files} files hashed, {report.checked_sets} sets recomputed")
    if report.ok:
        return 0
    print(f"FAILED: {root}: {len(report.problems)} problem(s)", file=sys.stderr)
    for problem in report.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1
