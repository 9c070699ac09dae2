"""Where a release argument points: one rule, used by every command and by the library.

``resolve_release(release)`` returns a local release folder:

1. ``None`` stands for the default release name, :data:`DEFAULT_RELEASE_NAME` (``v1``).
2. A path that exists (absolute, or relative to the working directory) is that folder.
3. A bare name ``vN`` is looked up, in this order, in

   - ``./data_cards/vN`` (relative to the working directory: a checkout, or any project folder
     laid out like one), then
   - ``<cache>/releases/vN``, where ``<cache>`` is ``$METAMER_BENCH_CACHE`` (default
     ``~/.cache/metamer-bench``, the same cache the datasets use). ``metamer-bench download vN``
     writes there by default.

   A candidate counts only when it holds ``MANIFEST.json``: a download writes the manifest last,
   so an interrupted download is never taken for a release.
4. Anything else is a :class:`UserError` that names every place looked at and the download
   command.

Why: nothing is resolved from the package's own location. ``pip install .`` ships the package,
not ``data_cards/``, so a default derived from ``Path(__file__).parents`` pointed into nowhere
outside an editable checkout. A checkout's release is found through the working directory like
any other folder. This module only locates; it reads nothing beyond a file's existence.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from benchmark.errors import UserError

DEFAULT_RELEASE_NAME = "v1"
RELEASE_NAME = re.compile(r"v[0-9]+")
PROJECT_DIR = "data_cards"  # ./data_cards/vN, relative to the working directory
MANIFEST_NAME = "MANIFEST.json"  # the same name as benchmark.release.manifest's; kept import-free


def release_cache_dir() -> Path:
    """``<cache>/releases``: where downloaded releases live (``$METAMER_BENCH_CACHE``, default
    ``~/.cache/metamer-bench``)."""
    from benchmark.graphs import default_cache_dir

    return default_cache_dir() / "releases"


def release_candidates(name: str) -> list[Path]:
    """The folders a bare release name ``vN`` is looked up in, in order."""
    return [Path(PROJECT_DIR) / name, release_cache_dir() / name]


def check_release_name(name: str) -> str:
    """``name`` if it is a release tag ``vN``, else a ``UserError``."""
    if not RELEASE_NAME.fullmatch(name):
        raise UserError(f"{name!r} is not a release name; release names are v<number>, e.g. {DEFAULT_RELEASE_NAME}")
    return name


def resolve_release(release: str | os.PathLike | None = None) -> Path:
    """The local folder of ``release`` by the rule in the module docstring."""
    if release is None:
        release = DEFAULT_RELEASE_NAME
    path = Path(release)
    if path.exists():
        return path
    name = os.fspath(release)
    if not RELEASE_NAME.fullmatch(name):
        raise UserError(f"release folder {name} does not exist, so it is not a frozen release (give a folder "
                        f"with {MANIFEST_NAME} or a release name such as {DEFAULT_RELEASE_NAME})")
    candidates = release_candidates(name)
    for candidate in candidates:
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    looked = ", ".join(f"{c}{'' if not c.exists() else f' (no {MANIFEST_NAME})'}" for c in candidates)
    raise UserError(f"release {name} not found; looked in {looked}; fetch it with "
                    f"`metamer-bench download {name} --from URL_OR_HUB_ID` (writes {candidates[-1]})")
