"""``metamer-bench validate``: every check a submission must pass, without scoring it.

Exit 1 when the submission is refused at intake (a failed check), 2 when the entry folder or an
explicitly named release does not exist (an input error).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmark.commands import RELEASE_HELP

NAME = "validate"
SUMMARY = "Run every intake check on a submission, without scoring."
HELP = ("Check a submission folder (card schema, safe paths, SHA-256, safetensors, strict loading, "
        "parameter count, release coverage, no weights equal to a reference checkpoint of a release that "
        "declares reference_seeds) without scoring it; exits 1 on the first class of problem.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("entry", type=Path, help="submission folder, e.g. submissions/my-model")
    parser.add_argument("--release", default=None,
                        help=f"{RELEASE_HELP} whose datasets the submission must cover; when no --release is "
                             "given and v1 is not found, coverage is skipped with a note")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON document on stdout: {"ok": true, "entry", "architecture", "seeds", '
                             '"datasets", "num_parameters", "release"} or, when refused, {"ok": false, "error"}')


def run(args: argparse.Namespace) -> int:
    from benchmark.commands import as_check, existing_dir
    from benchmark.errors import UserError
    from benchmark.release.locate import resolve_release
    from benchmark.release.opened import Release
    from benchmark.submissions import validate_submission

    existing_dir(args.entry, "submission folder")
    if args.release is not None:
        release = resolve_release(args.release)
    else:
        try:
            release = resolve_release(None)
        except UserError as err:
            release = None
            print(f"note: dataset coverage is not checked: {err}", file=sys.stderr)
    # Dimensions from the manifest's facts (or v1's reference cards): no shard is loaded.
    opened = Release.open(release) if release is not None else None
    dims = opened.dims if opened is not None else None
    with as_check():
        checked = validate_submission(args.entry, datasets=sorted(dims) if dims else None, dims=dims,
                                      references=opened)
    sub = checked.submission
    if args.json:
        print(json.dumps({"ok": True, "entry": str(args.entry), "architecture": sub.architecture, "seeds": sub.seeds,
                          "datasets": sorted(checked.models), "num_parameters": dict(sorted(checked.num_parameters.items())),
                          "release": None if release is None else str(release)}, indent=2))
        return 0
    params = ", ".join(f"{d} {n}" for d, n in sorted(checked.num_parameters.items()))
    print(f"{args.entry}: OK -- {sub.architecture}, seeds {sub.seeds}, datasets {sorted(checked.models)} "
          f"(parameters: {params}); every check passed"
          + (f" against release {release}" if release is not None else ""))
    return 0
