"""The verbs of ``metamer-bench``, one module each (see :mod:`benchmark.cli`), and the argparse
types they share."""
from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

# How a release argument is read (benchmark.release.locate.resolve_release), for every verb's --help.
RELEASE_HELP = ("release folder or name vN (default v1; a name is looked up in ./data_cards/, then in "
                "$METAMER_BENCH_CACHE/releases/)")


def positive_int(text: str) -> int:
    """argparse type for counts that must be >= 1: ``--epochs 0`` is refused as a usage error
    (exit 2) instead of silently meaning the default."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


@contextmanager
def as_check():
    """Inside this block a ``UserError`` means the input was read and refused by a check (a
    submission failing intake), so it is re-raised as :class:`CheckFailed`: exit 1, not 2."""
    from benchmark.errors import CheckFailed, UserError

    try:
        yield
    except CheckFailed:
        raise
    except UserError as err:
        raise CheckFailed(str(err)) from err


def existing_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a ``UserError`` (exit 2: an input path that does not exist)."""
    from benchmark.errors import UserError

    if not path.is_dir():
        raise UserError(f"{what} {path} is not a folder" if path.exists() else f"{what} {path} does not exist")
    return path
