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


def release_dims(release: Path):
    """Datasets a release scores (its manifest's sets) and their dimensions (its reference checkpoint
    cards), without loading any shard."""
    from benchmark.errors import UserError
    from benchmark.evaluate import reference_cards
    from benchmark.release.manifest import read_manifest
    from benchmark.submissions import DatasetDims

    manifest = read_manifest(release)
    if "datasets" in manifest:  # release v2 onwards: the facts were written at build time
        return {name: DatasetDims(f["num_features"], f["num_classes"], f["task"])
                for name, f in sorted(manifest["datasets"].items())}
    cards = reference_cards(release)
    dims = {}
    for dataset in sorted({s["dataset"] for s in manifest["sets"]}):
        found = {(c["config"]["in_channels"], c["config"]["out_channels"], c["config"].get("task", "node"))
                 for c in cards.get(dataset, {}).values() if isinstance(c.get("config"), dict)}
        if len(found) != 1:
            raise UserError(f"{release}: the reference checkpoint cards of {dataset} (checkpoints/{dataset}/<arch>/"
                            f"card.json) should give one (in_channels, out_channels, task), found {sorted(found)}")
        dims[dataset] = DatasetDims(*found.pop())
    return dims


def run(args: argparse.Namespace) -> int:
    from benchmark.commands import as_check, existing_dir
    from benchmark.errors import UserError
    from benchmark.release.locate import resolve_release
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
    dims = release_dims(release) if release is not None else None
    with as_check():
        checked = validate_submission(args.entry, datasets=sorted(dims) if dims else None, dims=dims,
                                      references=release)
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
