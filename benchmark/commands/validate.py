"""``metamer-bench validate``: every check a submission must pass, without scoring it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "validate"
HELP = ("Check a submission folder (card schema, safe paths, SHA-256, safetensors, strict loading, "
        "parameter count, release coverage) without scoring it; exits non-zero on the first class of problem.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("entry", type=Path, help="submission folder, e.g. submissions/my-model")
    parser.add_argument("--release", type=Path, default=None,
                        help="release whose datasets the submission must cover (default: the shipped data_cards/v1; "
                             "skipped with a note if it is absent)")


def release_dims(release: Path):
    """Datasets a release scores (its manifest's sets) and their dimensions (its reference checkpoint
    cards), without loading any shard."""
    from benchmark.errors import UserError
    from benchmark.evaluate import reference_cards
    from benchmark.release.manifest import read_manifest
    from benchmark.submissions import DatasetDims

    manifest = read_manifest(release)
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
    from benchmark.submissions import validate_submission

    from benchmark.release.loader import DEFAULT_RELEASE, resolve_release

    release = resolve_release(args.release) if args.release is not None else None
    if release is None and DEFAULT_RELEASE.is_dir():
        release = DEFAULT_RELEASE
    dims = release_dims(release) if release is not None else None
    if dims is None:
        print(f"note: no release at {DEFAULT_RELEASE}; dataset coverage is not checked", file=sys.stderr)
    checked = validate_submission(args.entry, datasets=sorted(dims) if dims else None, dims=dims)
    sub = checked.submission
    params = ", ".join(f"{d} {n}" for d, n in sorted(checked.num_parameters.items()))
    print(f"{args.entry}: OK -- {sub.architecture}, seeds {sub.seeds}, datasets {sorted(checked.models)} "
          f"(parameters: {params}); every check passed"
          + (f" against release {release}" if release is not None else ""))
    return 0
