"""Convert a release's shards from the v1 codec format (``ref``/``xor``/``csr``/``upper`` columns) to
the plain-column format of :mod:`benchmark.release.shards`, without re-optimising anything.

Every record is decoded with the legacy decoder below (a verbatim copy of the decoder the shards
were written with), re-encoded with the current writer, read back, and compared with the legacy
decoding: ids, metadata, stats and every tensor must be identical (``torch.equal``), or the script
stops before replacing a file. Then the data card and the manifest are rewritten from the build
state (``ReleaseBuilder.finish``) with the generator config the manifest records (``--config``
gives the order of datasets and sets, which the sorted JSON of the manifest loses), so the
release's sets, checkpoints and metamers are unchanged.

    python scripts/convert_release_shards.py data_cards/v1 --config scripts/release_v1.yaml

``--out DIR`` writes the converted shards to another folder (for measuring) and leaves the release alone.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import Tensor

from benchmark.errors import IntegrityError
from benchmark.files import read_json, sha256_file
from benchmark.release.build import ReleaseBuilder, ReleaseConfig
from benchmark.records import GraphRecord
from benchmark.release.shards import read_records, write_records

TENSORS = ("x", "edge_index", "y", "target", "valid", "similarity")
META = ("id", "role", "parent_id", "dataset", "task", "reference_model", "kind", "layer", "seed", "graph_index", "stats")


# ---- legacy decoder (benchmark/release/shards.py at commit 43d465f), used only to read old shards ----
def _from_csr(indptr: list[int], indices: list[int], values: list[float] | None, shape: tuple[int, int]) -> Tensor:
    x = torch.zeros(shape, dtype=torch.float32)
    if indices:
        counts = np.diff(np.asarray(indptr, dtype=np.int64))
        rows = torch.from_numpy(np.repeat(np.arange(shape[0]), counts))
        cols = torch.as_tensor(indices, dtype=torch.long)
        x[rows, cols] = 1.0 if values is None else torch.as_tensor(values, dtype=torch.float32)
    return x


def _edge_keys(edge_index: Tensor, n: int) -> np.ndarray:
    return (edge_index[0].long() * n + edge_index[1].long()).numpy()


def _edges_from_keys(keys: np.ndarray, n: int) -> Tensor:
    keys = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    return torch.stack([keys // n, keys % n])


def _upper_to_edges(upper: np.ndarray, n: int) -> Tensor:
    pairs = np.asarray(upper, dtype=np.int64).reshape(2, -1)
    both = np.concatenate([pairs, pairs[::-1]], axis=1)
    return _edges_from_keys(np.sort(both[0] * n + both[1]), n)


def legacy_table_to_records(table: pa.Table, references: Mapping[str, GraphRecord] | None = None,
                     source: str = "table") -> list[GraphRecord]:
    """Decode rows into records, resolving ``ref``/``xor`` codecs against earlier rows or ``references``."""
    known: dict[str, GraphRecord] = dict(references or {})
    out = []
    for row in table.to_pylist():
        shape = (row["num_nodes"], row["num_features"])
        n = row["num_nodes"]

        def referenced(ref_id: str) -> GraphRecord:
            if ref_id not in known:
                raise IntegrityError(f"{source}: record {row['id']} refers to {ref_id!r}, which is not loaded")
            return known[ref_id]

        codec = row["x_codec"]
        if codec == "ref":
            x = referenced(row["x_ref"]).x
        elif codec == "xor":
            flips = _from_csr(row["x_indptr"], row["x_indices"], None, shape)
            x = (referenced(row["x_ref"]).x != flips).float()
        elif codec == "csr":
            x = _from_csr(row["x_indptr"], row["x_indices"], row["x_values"], shape)
        elif codec == "dense":
            x = torch.tensor(row["x_values"], dtype=torch.float32).view(shape)
        else:
            raise IntegrityError(f"{source}: record {row['id']} has unknown feature codec {codec!r}")
        codec = row["edge_codec"]
        if codec == "ref":
            edge_index = referenced(row["edge_ref"]).edge_index
        elif codec == "xor":
            keys = np.setxor1d(_edge_keys(referenced(row["edge_ref"]).edge_index, n), np.asarray(row["edge_data"], dtype=np.int64))
            edge_index = _edges_from_keys(keys, n)
        elif codec == "upper":
            edge_index = _upper_to_edges(np.asarray(row["edge_data"], dtype=np.int64), n)
        elif codec == "raw":
            edge_index = torch.tensor(row["edge_data"], dtype=torch.long).view(2, -1)
        else:
            raise IntegrityError(f"{source}: record {row['id']} has unknown edge codec {codec!r}")
        if edge_index.size(1) != row["num_edges"]:
            raise IntegrityError(f"{source}: record {row['id']} decodes to {edge_index.size(1)} edges, expected {row['num_edges']}")
        record = GraphRecord(
            id=row["id"], role=row["role"], parent_id=row["parent_id"], dataset=row["dataset"], task=row["task"],
            reference_model=row["reference_model"], kind=row["kind"], layer=row["layer"], seed=row["seed"],
            graph_index=row["graph_index"], x=x, edge_index=edge_index, y=torch.tensor(row["y"], dtype=torch.long),
            target=torch.tensor(row["target_mask"], dtype=torch.bool), valid=torch.tensor(row["valid_mask"], dtype=torch.bool),
            similarity=torch.tensor(row["similarity"], dtype=torch.float32), stats=json.loads(row["stats"]))
        known[record.id] = record
        out.append(record)
    return out



# ---- conversion ----


def legacy_read(path: Path, references: dict[str, GraphRecord]) -> list[GraphRecord]:
    table = pq.read_table(path)
    if "x_codec" not in table.column_names:
        raise SystemExit(f"{path} is not in the legacy codec format (already converted?)")
    return legacy_table_to_records(table, references, source=str(path))


def same_records(old: list[GraphRecord], new: list[GraphRecord], source: str) -> int:
    if [r.id for r in old] != [r.id for r in new]:
        raise IntegrityError(f"{source}: record ids differ after conversion")
    for a, b in zip(old, new):
        for name in META:
            if getattr(a, name) != getattr(b, name):
                raise IntegrityError(f"{source}: {a.id}: {name} differs after conversion")
        for name in TENSORS:
            ta, tb = getattr(a, name), getattr(b, name)
            same = ta.dtype == tb.dtype and ta.shape == tb.shape and (
                torch.equal(ta, tb) or (ta.is_floating_point() and torch.equal(ta.isnan(), tb.isnan())
                                        and torch.equal(ta.nan_to_num(0.0), tb.nan_to_num(0.0))))
            if not same:
                raise IntegrityError(f"{source}: {a.id}: {name} differs after conversion")
    return len(old)


def convert(release: Path, out: Path) -> dict[str, tuple[int, int, int]]:
    """Convert every shard of ``release`` into ``out`` (may be ``release``); returns path -> (old, new, records)."""
    manifest = read_json(release / "MANIFEST.json")
    sizes = {}
    for name, rel in sorted(manifest["bases"].items()):
        old = legacy_read(release / rel, {})
        target = out / rel if out != release else release / (rel + ".new")
        write_records(target, old)
        same_records(old, read_records(target), rel)
        sizes[rel] = (manifest["files"][rel]["bytes"], target.stat().st_size, len(old))
    for entry in manifest["sets"]:
        rel, base_rel = entry["shard"], manifest["bases"][entry["dataset"]]
        old_bases = {r.id: r for r in legacy_read(release / base_rel, {})}
        old = legacy_read(release / rel, old_bases)
        target = out / rel if out != release else release / (rel + ".new")
        write_records(target, old, old_bases)
        base_target = out / base_rel if out != release else release / (base_rel + ".new")
        new_bases = {r.id: r for r in read_records(base_target)}
        same_records(old, read_records(target, new_bases), rel)
        sizes[rel] = (manifest["files"][rel]["bytes"], target.stat().st_size, len(old))
        print(f"{rel}: {len(old)} records identical, {sizes[rel][0]:,} -> {sizes[rel][1]:,} bytes", flush=True)
    if out == release:  # every shard checked: only now replace the originals
        for rel in sizes:
            (release / (rel + ".new")).replace(release / rel)
    return sizes


def rewrite_card_and_manifest(release: Path, config_path: Path) -> None:
    """README.md and MANIFEST.json for the converted shards, from the config the manifest records."""
    recorded = read_json(release / "MANIFEST.json")["generator"]["config"]
    config = ReleaseConfig.from_yaml(config_path)
    config.model_overrides = recorded.get("model_overrides", {})  # later pins do not rewrite history
    if json.dumps(config.to_dict(), sort_keys=True) != json.dumps(recorded, sort_keys=True):
        raise SystemExit(f"{config_path} does not describe the release in {release} (compare with its MANIFEST.json)")
    builder = ReleaseBuilder(config, release, progress=False)
    for key, step in builder.state["steps"].items():  # the build state must recognise the new shards as done
        kind, name, *rest = key.split("/")
        if kind == "base":
            step["sha256"] = sha256_file(release / "data" / "bases" / f"{name}.parquet")
        elif kind == "set":
            step["sha256"] = sha256_file(release / "data" / name / f"{rest[0]}-{rest[1]}.parquet")
    builder.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", type=Path, help="release folder in the legacy shard format")
    parser.add_argument("--config", type=Path, required=True, help="the release's YAML config, e.g. scripts/release_v1.yaml")
    parser.add_argument("--out", type=Path, help="write converted shards here instead of replacing the release's")
    args = parser.parse_args(argv)
    out = args.out or args.release
    if args.out:
        shutil.rmtree(out, ignore_errors=True)
    sizes = convert(args.release, out)
    by_dataset: dict[str, list[int]] = {}
    for rel, (old, new, _) in sizes.items():
        key = Path(rel).stem if rel.startswith("data/bases/") else Path(rel).parent.name
        by_dataset.setdefault(key, [0, 0])
        by_dataset[key][0] += old
        by_dataset[key][1] += new
    print(json.dumps({"shard_bytes_by_dataset (old, new)": by_dataset,
                      "total (old, new)": [sum(v[0] for v in by_dataset.values()), sum(v[1] for v in by_dataset.values())]},
                     indent=1))
    if not args.out:
        rewrite_card_and_manifest(args.release, args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
