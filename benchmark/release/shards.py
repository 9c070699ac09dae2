"""Parquet shards of :class:`GraphRecord` rows: plain, documented columns, exact, Hugging Face-loadable.

Every record is one row, and every tensor is a plain Arrow column a user can turn into a graph
without this module (``datasets.load_dataset`` on the release folder reads them):

- ``edge_index``: ``list<list<int64>>`` of shape ``[2, E]`` (``torch.tensor(row["edge_index"])``);
- ``x_indices`` (``[2, nnz]``, row-major COO positions of the nonzero features) and ``x_values``
  (``[nnz]`` float32): ``torch.sparse_coo_tensor(x_indices, x_values, (num_nodes, num_features))``;
- ``x_same_as`` / ``edge_index_same_as``: when a record's features (edges) are *identical* to those
  of another record, the tensor columns are null and this column names that record's ``id`` (the
  parent original, or the dataset's base graph in ``data/bases/``); the named record always stores the
  tensor itself (no chains of pointers). Structure metamers keep their
  parent's features and feature metamers its edges, so without this one Photo graph (2.0M feature
  ones) would be stored seven times per set; the measured alternatives are in docs/design_notes.md.

Size is parquet's job, not a custom codec's: zstd, dictionary encoding for the strings and the
feature values (binary features are a run of ones), delta encoding for the sorted index lists and
byte-stream-split for the float similarities. Writing checks that every record decodes to the
identical tensors; the same records give the same bytes (pinned pyarrow writer options).

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
from benchmark.records import GraphRecord

_INDEX = pa.list_(pa.list_(pa.int64()))
SCHEMA = pa.schema([
    ("id", pa.string()), ("role", pa.string()), ("parent_id", pa.string()), ("dataset", pa.string()),
    ("task", pa.string()), ("reference_model", pa.string()), ("kind", pa.string()), ("layer", pa.int32()),
    ("seed", pa.int32()), ("graph_index", pa.int32()), ("num_nodes", pa.int32()), ("num_features", pa.int32()),
    ("num_edges", pa.int64()), ("x_same_as", pa.string()), ("x_indices", _INDEX), ("x_values", pa.list_(pa.float32())),
    ("edge_index_same_as", pa.string()), ("edge_index", _INDEX), ("y", pa.list_(pa.int64())),
    ("target_mask", pa.list_(pa.bool_())), ("valid_mask", pa.list_(pa.bool_())), ("similarity", pa.list_(pa.float32())),
    ("stats", pa.string()),
])
COLUMNS = SCHEMA.names

# What each column holds: rendered into the data card, so the card documents exactly this schema.
COLUMN_DOCS = {
    "id": "unique record id, e.g. `MUTAG/gcn/feature/L2/s0/metamer/g9` (bases: `Cora/base`, `MUTAG/base/g9`)",
    "role": "`base` (a dataset's graph, in `data/bases/`), `original` (a set's copy of it), `metamer`, `near` or `far`",
    "parent_id": "id of the original a variant was made from (null for bases and originals)",
    "dataset": "source dataset (also the name of its config)",
    "task": "`node` (node classification, one graph) or `graph` (graph classification)",
    "reference_model": "architecture of the reference model whose activations the metamer matches (empty for bases; checkpoint in `checkpoints/<dataset>/<arch>/`)",
    "kind": "`feature` (features changed, edges kept) or `structure` (edges changed, features kept); empty for bases",
    "layer": "hidden layer of the reference model matched (0 for bases)",
    "seed": "metamer seed (-1 for bases and originals)",
    "graph_index": "index of the graph in its dataset (graph tasks; 0 for node tasks)",
    "num_nodes": "N, number of nodes",
    "num_features": "F, number of node features",
    "num_edges": "E, number of directed edges (both directions of an undirected edge are listed)",
    "x_same_as": "null, or the id of the record whose features are identical (then `x_indices`/`x_values` are null)",
    "x_indices": "`[2, nnz]` row-major COO positions (node, feature) of the nonzero features",
    "x_values": "`[nnz]` float32 feature values at `x_indices` (1.0 for binary bag-of-words features)",
    "edge_index_same_as": "null, or the id of the record whose `edge_index` is identical (then `edge_index` is null)",
    "edge_index": "`[2, E]` int64 source and target node of each edge, PyG's `edge_index`",
    "y": "`[N]` node labels (node tasks) or `[1]` the graph label (graph tasks)",
    "target_mask": "`[N]` nodes the metamer was optimised for and is scored on (all true for graph tasks)",
    "valid_mask": "`[N]` (node tasks) or `[1]` (graph tasks): the metamer passes the validity check",
    "similarity": "`[N]` float32 input similarity of each node to the parent (feature cosine or WL similarity; NaN: undefined)",
    "stats": "JSON object of the generation's statistics (relative loss, null threshold, ...)",
}
assert list(COLUMN_DOCS) == COLUMNS, "every column is documented, in schema order"

_DICTIONARY = ["id", "role", "parent_id", "dataset", "task", "reference_model", "kind", "x_same_as", "edge_index_same_as",
               "x_values", "stats"]
# Sorted rows of COO positions and of edge lists delta-encode to a few bits each.
_ENCODINGS = {"x_indices.list.element.list.element": "DELTA_BINARY_PACKED",
              "edge_index.list.element.list.element": "DELTA_BINARY_PACKED",
              "y.list.element": "DELTA_BINARY_PACKED", "similarity.list.element": "BYTE_STREAM_SPLIT"}


def _coo(x: Tensor) -> tuple[list[list[int]], list[float]]:
    rows, cols = (x != 0).nonzero(as_tuple=True)
    return [rows.tolist(), cols.tolist()], x[rows, cols].float().tolist()


def _from_coo(indices: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> Tensor:
    x = torch.zeros(shape, dtype=torch.float32)
    if values.size:
        x[torch.tensor(indices[0]), torch.tensor(indices[1])] = torch.tensor(values, dtype=torch.float32)
    return x


def _same(candidates: list[GraphRecord], name: str, value: Tensor, pointers: set[str]) -> str | None:
    """Id of the first candidate whose ``name`` tensor equals ``value`` and is stored in its own row."""
    for ref in candidates:
        other = getattr(ref, name)
        if ref.id not in pointers and other.shape == value.shape and other.dtype == value.dtype and torch.equal(other, value):
            return ref.id
    return None


def records_to_table(records: Iterable[GraphRecord], references: Mapping[str, GraphRecord] | None = None) -> pa.Table:
    """Encode ``records`` as an Arrow table; each row is checked to decode to the record's tensors."""
    records = list(records)
    known: dict[str, GraphRecord] = dict(references or {})
    # Records of this table whose x / edge_index is itself a pointer: never named, so a `*_same_as`
    # id always leads straight to stored values (one lookup, no chains). References store theirs.
    pointers: dict[str, set[str]] = {"x": set(), "edge_index": set()}
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
                   stats=json.dumps(record.stats, sort_keys=True, allow_nan=False),
                   x_same_as=_same(candidates, "x", record.x.float(), pointers["x"]),
                   edge_index_same_as=_same(candidates, "edge_index", record.edge_index.long(), pointers["edge_index"]))
        if row["x_same_as"] is None:
            row["x_indices"], row["x_values"] = _coo(record.x)
        else:
            pointers["x"].add(record.id)
        if row["edge_index_same_as"] is None:
            row["edge_index"] = record.edge_index.long().tolist()
        else:
            pointers["edge_index"].add(record.id)
        for name in COLUMNS:
            rows[name].append(row[name])
        known[record.id] = record
    table = pa.Table.from_pydict(rows, schema=SCHEMA)
    decoded = table_to_records(table, references, source="the table being written")
    for record, back in zip(records, decoded):
        for name in ("x", "edge_index"):
            if not torch.equal(getattr(record, name), getattr(back, name)):
                raise IntegrityError(f"record {record.id}: {name} does not survive the parquet round trip")
    return table


# Tensor columns are read column-wise into numpy (the fast path): Python lists of 2M ints are slow.
_TENSOR_COLUMNS = ("x_indices", "x_values", "edge_index", "y", "target_mask", "valid_mask", "similarity")


def table_to_records(table: pa.Table, references: Mapping[str, GraphRecord] | None = None,
                     source: str = "table") -> list[GraphRecord]:
    """Decode rows into records, resolving ``*_same_as`` against earlier rows or ``references``."""
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise IntegrityError(f"{source}: not a metamer-bench shard (missing columns {missing})")
    known: dict[str, GraphRecord] = dict(references or {})
    tensors = {name: table.column(name).combine_chunks() for name in _TENSOR_COLUMNS}
    out = []
    for i, row in enumerate(table.drop_columns(list(_TENSOR_COLUMNS)).to_pylist()):
        def array(name: str, rank: int = 1) -> np.ndarray | None:
            value = tensors[name][i]
            if not value.is_valid:
                return None
            flat = value.values if rank == 1 else value.values.flatten()
            flat = flat.to_numpy(zero_copy_only=False)
            if rank == 2:
                if len(value.values) != 2 or len(value.values[0]) != len(value.values[1]):
                    raise IntegrityError(f"{source}: record {row['id']}: {name} is not a [2, n] list")
                return flat.reshape(2, -1)
            return flat

        def same_as(column: str, name: str) -> Tensor:
            ref_id = row[column]
            if ref_id not in known:
                raise IntegrityError(f"{source}: record {row['id']} has {column}={ref_id!r}, which is not loaded")
            return getattr(known[ref_id], name)

        shape = (row["num_nodes"], row["num_features"])
        if row["x_same_as"] is not None:
            x = same_as("x_same_as", "x")
        else:
            indices, values = array("x_indices", 2), array("x_values")
            if indices is None or values is None or indices.shape[1] != values.size:
                raise IntegrityError(f"{source}: record {row['id']} has neither x_same_as nor matching x_indices/x_values")
            x = _from_coo(indices, values, shape)
        if row["edge_index_same_as"] is not None:
            edge_index = same_as("edge_index_same_as", "edge_index")
        else:
            edges = array("edge_index", 2)
            if edges is None:
                raise IntegrityError(f"{source}: record {row['id']} has neither edge_index_same_as nor edge_index")
            edge_index = torch.tensor(edges, dtype=torch.long)
        if edge_index.size(1) != row["num_edges"] or tuple(x.shape) != shape:
            raise IntegrityError(f"{source}: record {row['id']} decodes to x {tuple(x.shape)} and {edge_index.size(1)} "
                                 f"edges, expected {shape} and {row['num_edges']}")
        record = GraphRecord(
            id=row["id"], role=row["role"], parent_id=row["parent_id"], dataset=row["dataset"], task=row["task"],
            reference_model=row["reference_model"], kind=row["kind"], layer=row["layer"], seed=row["seed"],
            graph_index=row["graph_index"], x=x, edge_index=edge_index, y=torch.tensor(array("y"), dtype=torch.long),
            target=torch.tensor(array("target_mask"), dtype=torch.bool),
            valid=torch.tensor(array("valid_mask"), dtype=torch.bool),
            similarity=torch.tensor(array("similarity"), dtype=torch.float32), stats=json.loads(row["stats"]))
        known[record.id] = record
        out.append(record)
    return out


def table_bytes(table: pa.Table) -> bytes:
    """Parquet bytes, deterministic for the same table and pyarrow version."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=9, use_dictionary=_DICTIONARY,
                   column_encoding=_ENCODINGS, write_statistics=False)
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
