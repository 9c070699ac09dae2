"""Loading a frozen release: ``load_frozen_sets`` (for scoring) and ``load_metamers`` (PyG ``Data``).

A release folder (``data_cards/v1``) holds ``MANIFEST.json``, ``data/bases/<dataset>.parquet``
(the base graphs every set refers to) and one shard per set. These functions open it as a
:class:`~benchmark.release.opened.Release` (or take one already opened) and read through it, so the
manifest is read once; files are hash-checked against it by default (``verify``). A ``release``
argument is a folder or a name ``vN``, found by the one rule of
:func:`benchmark.release.locate.resolve_release` (working directory's ``data_cards/``, then the
cache that ``metamer-bench download`` fills); the default is ``v1``.
The PyG loaders are the fast path (pyarrow straight to tensors); ``hf_dataset`` is the same rows
through Hugging Face ``datasets`` (plain columns, see :mod:`benchmark.release.shards`).
"""
from __future__ import annotations

import os

from torch_geometric.data import Data

from benchmark.errors import unknown_choice
from benchmark.records import ROLES, FrozenSet
from benchmark.release.locate import resolve_release
from benchmark.release.opened import Release, VerificationMode

__all__ = ["hf_dataset", "load_frozen_sets", "load_metamers", "resolve_release"]


def load_frozen_sets(release: Release | str | os.PathLike | None = None,
                     verify: VerificationMode | str | bool | None = None, dataset: str | None = None,
                     reference_model: str | None = None, kind: str | None = None,
                     layer: int | None = None) -> list[FrozenSet]:
    """Every frozen set of a release (optionally filtered), records decoded and checked per ``verify``
    (a :class:`~benchmark.release.opened.VerificationMode`, or ``True``/``False``; ``None``: an opened
    release's own mode, else every file read is hash-checked)."""
    return Release.open(release, verify).load_sets(dataset, reference_model, kind, layer)


def load_metamers(release: Release | str | os.PathLike | None = None, dataset: str | None = None,
                  reference_model: str | None = None, kind: str | None = None, role: str | None = "metamer",
                  layer: int | None = None, verify: VerificationMode | str | bool | None = None) -> list[Data]:
    """PyG ``Data`` objects of a release, filtered like the sets (``role=None``: every role).

    Each ``Data`` has ``x [N, F]``, ``edge_index [2, E]``, ``y``, ``target_mask``, ``valid_mask``,
    ``similarity`` and the ids ``record_id``, ``role``, ``parent_id``.
    """
    if role is not None and role not in ROLES:
        raise unknown_choice("role", role, ROLES)
    out = []
    for frozen_set in load_frozen_sets(release, verify, dataset, reference_model, kind, layer):
        records = frozen_set.originals + frozen_set.variants
        out += [r.to_data() for r in records if role is None or r.role == role]
    return out


def hf_dataset(release: Release | str | os.PathLike | None = None, config: str = "default",
               verify: VerificationMode | str | bool | None = None):
    """One config of a release as a Hugging Face ``datasets.Dataset``: ``datasets.load_dataset`` on the folder.

    ``config`` is ``default`` (every row), a dataset name (its base graph(s) and sets) or ``bases``;
    the columns are documented in the data card and in :mod:`benchmark.release.shards`. With
    ``verify`` every file is checked against the manifest first. :func:`load_metamers` is the
    faster path to PyG ``Data`` objects.
    """
    import datasets

    from benchmark.graphs import default_cache_dir

    opened = Release.open(release, verify)
    valid = ["default", *opened.datasets, "bases"]
    if config not in valid:
        raise unknown_choice("config", config, valid)
    opened.check()
    # Hugging Face keys its cache of a local folder by the folder's name, not its content: a rebuilt
    # or re-downloaded release at the same path would be served from the stale cache. Key it by the
    # manifest's hash instead (the manifest hashes every file).
    cache = default_cache_dir() / "hf" / opened.manifest_sha256[:16]
    return datasets.load_dataset(str(opened.root), config, split="train", cache_dir=str(cache))
