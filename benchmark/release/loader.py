"""Loading a frozen release: ``load_frozen_sets`` (for scoring) and ``load_metamers`` (PyG ``Data``).

A release folder (``data_cards/v1``) holds ``MANIFEST.json``, ``data/bases/<dataset>.parquet``
(the base graphs every set refers to) and one shard per set. Files are verified against the
manifest by default. A ``release`` argument is a folder or a name ``vN``, found by the one rule of
:func:`benchmark.release.locate.resolve_release` (working directory's ``data_cards/``, then the
cache that ``metamer-bench download`` fills); the default is ``v1``.
The PyG loaders are the fast path (pyarrow straight to tensors); ``hf_dataset`` is the same rows
through Hugging Face ``datasets`` (plain columns, see :mod:`benchmark.release.shards`).
"""
from __future__ import annotations

import os

from torch_geometric.data import Data

from benchmark.errors import unknown_choice
from benchmark.release.locate import resolve_release
from benchmark.release.manifest import MANIFEST_NAME, read_manifest, verify_files
from benchmark.records import ROLES, FrozenSet, GraphRecord
from benchmark.release.shards import read_records

__all__ = ["hf_dataset", "load_frozen_sets", "load_metamers", "resolve_release"]


def _select(manifest: dict, dataset, reference_model, kind, layer) -> list[dict]:
    sets = manifest["sets"]
    for name, value in (("dataset", dataset), ("reference_model", reference_model), ("kind", kind), ("layer", layer)):
        if value is None:
            continue
        valid = sorted({str(s[name]) for s in sets})
        if str(value) not in valid:
            raise unknown_choice(name.replace("_", " "), value, valid)
        sets = [s for s in sets if str(s[name]) == str(value)]
    return sets


def load_frozen_sets(release: str | os.PathLike | None = None, verify: bool = True, dataset: str | None = None,
                     reference_model: str | None = None, kind: str | None = None,
                     layer: int | None = None) -> list[FrozenSet]:
    """Every frozen set of a release (optionally filtered), records decoded and manifest-verified."""
    root = resolve_release(release)
    manifest = read_manifest(root)
    chosen = _select(manifest, dataset, reference_model, kind, layer)
    if verify:
        needed = sorted({s["shard"] for s in chosen} | {manifest["bases"][s["dataset"]] for s in chosen})
        verify_files(root, manifest, only=needed)
    bases: dict[str, dict[str, GraphRecord]] = {}
    out = []
    for entry in chosen:
        name = entry["dataset"]
        if name not in bases:
            bases[name] = {r.id: r for r in read_records(root / manifest["bases"][name])}
        records = read_records(root / entry["shard"], bases[name])
        originals = [r for r in records if r.role == "original"]
        variants = [r for r in records if r.role != "original"]
        out.append(FrozenSet(name, entry["task"], entry["reference_model"], entry["kind"], entry["layer"],
                             originals, variants))
    return out


def load_metamers(release: str | os.PathLike | None = None, dataset: str | None = None,
                  reference_model: str | None = None, kind: str | None = None, role: str | None = "metamer",
                  layer: int | None = None, verify: bool = True) -> list[Data]:
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


def hf_dataset(release: str | os.PathLike | None = None, config: str = "default", verify: bool = True):
    """One config of a release as a Hugging Face ``datasets.Dataset``: ``datasets.load_dataset`` on the folder.

    ``config`` is ``default`` (every row), a dataset name (its base graph(s) and sets) or ``bases``;
    the columns are documented in the data card and in :mod:`benchmark.release.shards`. With
    ``verify`` every file is hash-checked against the manifest first. :func:`load_metamers` is the
    faster path to PyG ``Data`` objects.
    """
    import datasets

    root = resolve_release(release)
    manifest = read_manifest(root)
    valid = ["default", *sorted({s["dataset"] for s in manifest["sets"]}), "bases"]
    if config not in valid:
        raise unknown_choice("config", config, valid)
    if verify:
        verify_files(root, manifest)
    # Hugging Face keys its cache of a local folder by the folder's name, not its content: a rebuilt
    # or re-downloaded release at the same path would be served from the stale cache. Key it by the
    # manifest's hash instead (the manifest hashes every file).
    from benchmark.files import sha256_file
    from benchmark.graphs import default_cache_dir

    cache = default_cache_dir() / "hf" / sha256_file(root / MANIFEST_NAME)[:16]
    return datasets.load_dataset(str(root), config, split="train", cache_dir=str(cache))
