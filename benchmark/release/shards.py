"""Parquet shards of :class:`GraphRecord` rows (pyarrow, zstd), compact and exact.

Every record is one row. Features and edges are stored with the cheapest codec that
reproduces the tensor *exactly* (checked at write time):

- ``ref``: identical to the tensor of another record (its parent, or the dataset's base graph),
  named in ``x_ref`` / ``edge_ref``; structure metamers keep the parent's features, feature
  metamers its edges, and every set's original is the dataset's base graph;
- ``xor``: binary features / edge set given as the entries that differ from the parent (near
  twins flip ~1% of the ones);
- ``csr`` (features) / ``upper`` (symmetric edge lists without self loops, stored once per pair) /
  ``dense`` / ``raw``.

Referenced records must come earlier in the same shard or be passed in ``references``.
"""
from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import Tensor

from benchmark.errors import IntegrityError, UserError
from benchmark.files import atomic_write_bytes
from benchmark.release.records import GraphRecord

SCHEMA = pa.schema([
    ("id", pa.string()), ("role", pa.string()), ("parent_id", pa.string()), ("dataset", pa.string()),
    ("task", pa.string()), ("reference_model", pa.string()), ("kind", pa.string()), ("layer", pa.int32()),
    ("seed", pa.int32()), ("graph_index", pa.int32()), ("num_nodes", pa.int32()), ("num_features", pa.int32()),
    ("x_codec", pa.string()), ("x_ref", pa.string()), ("x_indptr", pa.list_(pa.int64())),
    ("x_indices", pa.list_(pa.int64())), ("x_values", pa.list_(pa.float32())),
    ("edge_codec", pa.string()), ("edge_ref", pa.string()), ("edge_data", pa.list_(pa.int64())),
    ("num_edges", pa.int64()), ("y", pa.list_(pa.int64())), ("target_mask", pa.list_(pa.bool_())),
    ("valid_mask", pa.list_(pa.bool_())), ("similarity", pa.list_(pa.float32())), ("stats", pa.string()),
])
COLUMNS = SCHEMA.names


def _is_binary(x: Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _csr(x: Tensor) -> tuple[list[int], list[int], list[float] | None]:
    rows, cols = (x != 0).nonzero(as_tuple=True)
    counts = torch.bincount(rows, minlength=x.size(0))
    indptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    values = None if _is_binary(x) else x[rows, cols].float().tolist()
    return indptr.tolist(), cols.tolist(), values


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


def _encode_x(record: GraphRecord, candidates: list[GraphRecord], parent: GraphRecord | None) -> dict:
    x = record.x
    for ref in candidates:
        if ref.x.shape == x.shape and torch.equal(ref.x, x):
            return {"x_codec": "ref", "x_ref": ref.id}
    indptr, indices, values = _csr(x)
    if values is None and parent is not None and parent.x.shape == x.shape and _is_binary(parent.x):
        d_indptr, d_indices, _ = _csr((x != parent.x).float())
        if len(d_indices) < len(indices):
            return {"x_codec": "xor", "x_ref": parent.id, "x_indptr": d_indptr, "x_indices": d_indices}
    if values is not None and len(indices) > 0.5 * x.numel():
        return {"x_codec": "dense", "x_values": x.float().reshape(-1).tolist()}
    return {"x_codec": "csr", "x_indptr": indptr, "x_indices": indices, "x_values": values}


def _encode_edges(record: GraphRecord, candidates: list[GraphRecord], parent: GraphRecord | None) -> dict:
    e, n = record.edge_index, record.num_nodes
    for ref in candidates:
        if ref.edge_index.shape == e.shape and torch.equal(ref.edge_index, e):
            return {"edge_codec": "ref", "edge_ref": ref.id}
    keys = _edge_keys(e, n)
    sorted_unique = bool(np.all(np.diff(keys) > 0))
    if parent is not None and sorted_unique and parent.num_nodes == n:
        diff = np.setxor1d(_edge_keys(parent.edge_index, n), keys)
        if diff.size < e.size(1):
            return {"edge_codec": "xor", "edge_ref": parent.id, "edge_data": diff.tolist()}
    upper = e[:, e[0] < e[1]]
    if e.size(1) and torch.equal(_upper_to_edges(upper.reshape(-1).numpy(), n), e):
        return {"edge_codec": "upper", "edge_data": upper.reshape(-1).tolist()}
    return {"edge_codec": "raw", "edge_data": e.reshape(-1).tolist()}


def records_to_table(records: Iterable[GraphRecord], references: Mapping[str, GraphRecord] | None = None) -> pa.Table:
    """Encode ``records`` (each verified to decode exactly) as an Arrow table."""
    known: dict[str, GraphRecord] = dict(references or {})
    rows: dict[str, list] = {name: [] for name in COLUMNS}
    for record in records:
        parent = known.get(record.parent_id) if record.parent_id else None
        bases = [r for r in known.values() if r.role == "base" and r.dataset == record.dataset
                 and r.graph_index == record.graph_index]
        candidates = [c for c in (parent, *bases) if c is not None]
        row = {name: None for name in COLUMNS}
        row.update(id=record.id, role=record.role, parent_id=record.parent_id, dataset=record.dataset, task=record.task,
                   reference_model=record.reference_model, kind=record.kind, layer=record.layer, seed=record.seed,
                   graph_index=record.graph_index, num_nodes=record.num_nodes, num_features=int(record.x.size(1)),
                   num_edges=int(record.edge_index.size(1)), y=record.y.long().tolist(),
                   target_mask=record.target.bool().tolist(), valid_mask=record.valid.bool().tolist(),
                   similarity=record.similarity.float().tolist(),
                   stats=json.dumps(record.stats, sort_keys=True, allow_nan=False))
        row.update(_encode_x(record, candidates, parent))
        row.update(_encode_edges(record, candidates, parent))
        for name in COLUMNS:
            rows[name].append(row[name])
        known[record.id] = record
    return pa.Table.from_pydict(rows, schema=SCHEMA)


def table_to_records(table: pa.Table, references: Mapping[str, GraphRecord] | None = None,
                     source: str = "table") -> list[GraphRecord]:
    """Decode rows into records, resolving ``ref``/``xor`` codecs against earlier rows or ``references``."""
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise IntegrityError(f"{source}: not a metamer-bench shard (missing columns {missing})")
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


def table_bytes(table: pa.Table) -> bytes:
    """Parquet bytes, deterministic for the same table and pyarrow version."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=9, use_dictionary=["id", "role", "parent_id",
                   "dataset", "task", "reference_model", "kind", "x_codec", "x_ref", "edge_codec", "edge_ref"],
                   write_statistics=False)
    return sink.getvalue()


def write_records(path: str | os.PathLike, records: Iterable[GraphRecord],
                  references: Mapping[str, GraphRecord] | None = None) -> None:
    """Write ``records`` to a parquet shard at ``path`` atomically."""
    atomic_write_bytes(path, table_bytes(records_to_table(records, references)))


def read_records(path: str | os.PathLike, references: Mapping[str, GraphRecord] | None = None) -> list[GraphRecord]:
    """Read a shard written by :func:`write_records`; corrupt files raise ``IntegrityError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"shard not found: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise IntegrityError(f"{path}: not a readable parquet file ({err})") from err
    return table_to_records(table, references, source=str(path))
