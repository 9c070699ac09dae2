"""``metamer-bench validate``: every check a submission must pass, without scoring it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "validate"
HELP = ("Check a submission folder (card schema, safe paths, SHA-256, safetensors, strict loading, "
        "parameter count, release coverage) without scoring it; exits non-zero on the first class of problem.")
DEFAULT_RELEASE = Path("data_cards/v1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("entry", type=Path, help="submission folder, e.g. submissions/my-model")
    parser.add_argument("--release", type=Path, default=None,
                        help=f"release whose datasets the submission must cover (default {DEFAULT_RELEASE}, "
                             "skipped with a note if that folder is absent)")


def release_dims(release: Path):
    """Datasets of a release and their dimensions, from its reference checkpoint cards (no shard loading)."""
    from benchmark.errors import UserError
    from benchmark.evaluate import reference_cards, release_identity
    from benchmark.submissions import DatasetDims

    release_identity(release)  # fails clearly if this is not a release folder
    dims = {}
    for dataset, cards in sorted(reference_cards(release).items()):
        found = {(c["config"]["in_channels"], c["config"]["out_channels"], c["config"].get("task", "node"))
                 for c in cards.values() if isinstance(c.get("config"), dict)}
        if len(found) != 1:
            raise UserError(f"{release}: reference cards of {dataset} disagree on (in, out, task): {sorted(found)}")
        dims[dataset] = DatasetDims(*found.pop())
    if not dims:
        raise UserError(f"{release}: no reference checkpoint cards under checkpoints/<dataset>/<arch>/card.json")
    return dims


def run(args: argparse.Namespace) -> int:
    from benchmark.submissions import validate_submission

    release = args.release
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
