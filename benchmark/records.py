"""In-memory objects of a frozen release: one ``GraphRecord`` per stored graph, grouped in sets.

This is the contract between the metamer engine (which produces records), the parquet shards
(which store them, one row per record) and the evaluator (which scores models on them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch_geometric.data import Data

from benchmark.vocabulary import KINDS, ROLES  # noqa: F401  (re-exported)


@dataclass
class GraphRecord:
    """One stored graph object (an original, a metamer or one of its twins).

    Shapes: ``x [N, F]`` float, ``edge_index [2, E]`` long, ``y [N]`` (node task) or ``[1]``
    (graph task) long, ``target [N]`` bool (nodes the metamer was optimised for and is scored on;
    all True for graph tasks), ``valid [N]`` bool (validity mask; graph tasks: ``[1]``),
    ``similarity [N]`` float (input similarity of each node to the parent graph: feature cosine
    for feature metamers, WL-subtree similarity of its 2-hop neighbourhood for structure ones;
    NaN where undefined; originals: 1).
    """

    id: str
    role: str
    parent_id: str | None
    dataset: str
    task: str  # "node" or "graph"
    reference_model: str  # registry arch of the generating model; "" for originals
    kind: str  # feature | continuous | structure | joint; "" for originals
    layer: int  # stage matched: hidden layer 1..L, or L + 1 for the logits; 0 for originals
    seed: int  # metamer seed; -1 for originals
    graph_index: int  # index of the graph in its dataset (graph tasks); 0 for node tasks
    x: Tensor
    edge_index: Tensor
    y: Tensor
    target: Tensor
    valid: Tensor
    similarity: Tensor
    stats: dict = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return int(self.x.size(0))

    def to_data(self) -> Data:
        """A PyG ``Data`` with ``x, edge_index, y, target_mask, valid_mask, similarity`` and ids."""
        return Data(x=self.x, edge_index=self.edge_index, y=self.y, target_mask=self.target,
                    valid_mask=self.valid, similarity=self.similarity, record_id=self.id, role=self.role,
                    parent_id=self.parent_id or "", num_nodes=self.num_nodes)


@dataclass
class FrozenSet:
    """Everything scored together: one dataset x reference model x kind x layer.

    ``originals`` holds the base graph(s) (node tasks: one; graph tasks: the test graphs);
    ``variants`` the metamers and twins, each pointing at its original via ``parent_id``.
    """

    dataset: str
    task: str
    reference_model: str
    kind: str
    layer: int
    originals: list[GraphRecord]
    variants: list[GraphRecord]

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.reference_model}/{self.kind}/L{self.layer}"

    @property
    def seeds(self) -> list[int]:
        return sorted({v.seed for v in self.variants})

    def by_role(self, role: str) -> list[GraphRecord]:
        return [v for v in self.variants if v.role == role]

    def parent(self, record: GraphRecord) -> GraphRecord:
        for original in self.originals:
            if original.id == record.parent_id:
                return original
        raise KeyError(f"{record.id}: parent {record.parent_id!r} not in set {self.key}")


def empty_similarity(num_nodes: int) -> Tensor:
    return torch.full((num_nodes,), float("nan"))
