"""Property tests (hypothesis): parquet shards give back exactly the records written, on random small graphs.

The shard codec (benchmark/release/shards.py) stores features as COO positions and float32 values,
edges as int64 lists, and replaces a tensor identical to its parent's by a pointer. Every field of
every record must survive ``records_to_table -> parquet bytes -> table_to_records`` bit for bit
(NaN similarities included), whether the variant shares its parent's features, its edges or neither.
"""
from __future__ import annotations

import io
import math

import pyarrow.parquet as pq
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.records import GraphRecord
from benchmark.release.shards import records_to_table, table_bytes, table_to_records

FLOATS = st.sampled_from([0.0, 1.0, 0.5, -2.25, 1e-3, 3.0e7])  # exactly float32; zeros are left out of COO
SIMILARITY = st.sampled_from([1.0, 0.25, 0.0, math.nan])


@st.composite
def graph(draw, n: int, f: int):
    """``(x [n, f] float32, edge_index [2, E] long)``."""
    x = torch.tensor(draw(st.lists(st.lists(FLOATS, min_size=f, max_size=f), min_size=n, max_size=n)),
                     dtype=torch.float32)
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
    edge_index = torch.tensor(edges, dtype=torch.long).t().reshape(2, -1)
    return x, edge_index


@st.composite
def records(draw):
    """An original and 1-3 variants on the same nodes, each sharing its features, its edges or neither."""
    n, f = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    task = draw(st.sampled_from(["node", "graph"]))

    def record(rid, role, parent, x, edge_index, seed, layer, kind):
        labels = (n if task == "node" else 1)
        return GraphRecord(
            id=rid, role=role, parent_id=parent, dataset="D", task=task, reference_model="gcn" if parent else "",
            kind=kind, layer=layer, seed=seed, graph_index=0, x=x, edge_index=edge_index,
            y=torch.tensor(draw(st.lists(st.integers(0, 5), min_size=labels, max_size=labels)), dtype=torch.long),
            target=torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=torch.bool),
            valid=torch.tensor(draw(st.lists(st.booleans(), min_size=labels, max_size=labels)), dtype=torch.bool),
            similarity=torch.tensor(draw(st.lists(SIMILARITY, min_size=n, max_size=n)), dtype=torch.float32),
            stats=draw(st.dictionaries(st.sampled_from(["rel_loss", "steps"]), st.integers(0, 99), max_size=2)))

    x, edge_index = draw(graph(n, f))
    out = [record("D/original", "original", None, x, edge_index, -1, 0, "")]
    for i in range(draw(st.integers(1, 3))):
        own_x, own_edges = draw(graph(n, f))
        shared = draw(st.sampled_from(["x", "edge_index", "neither"]))
        out.append(record(f"D/v{i}", draw(st.sampled_from(["metamer", "near", "far"])), "D/original",
                          x.clone() if shared == "x" else own_x,
                          edge_index.clone() if shared == "edge_index" else own_edges, i, 1,
                          "structure" if shared == "x" else "feature"))
    return out


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtype, shape and values, NaN equal to NaN."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        return bool(torch.equal(torch.isnan(a), torch.isnan(b))) and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
    return torch.equal(a, b)


@settings(max_examples=150, deadline=None)
@given(records())
def test_shards_round_trip_every_field_exactly(written):
    data = table_bytes(records_to_table(written))
    back = table_to_records(pq.read_table(io.BytesIO(data)), source="round trip")
    assert [r.id for r in back] == [r.id for r in written]
    for want, got in zip(written, back):
        for name in ("role", "parent_id", "dataset", "task", "reference_model", "kind", "layer", "seed", "graph_index",
                     "stats"):
            assert getattr(got, name) == getattr(want, name), (want.id, name)
        for name in ("x", "edge_index", "y", "target", "valid", "similarity"):
            assert _same(getattr(got, name), getattr(want, name)), (want.id, name)
    assert table_bytes(records_to_table(written)) == data  # the same records give the same bytes
