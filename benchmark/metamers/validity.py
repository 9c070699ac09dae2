"""Validity of metamers: same prediction, and activations closer than chance.

Node ``v`` of a metamer is valid when (i) the reference model predicts the same class at ``v``
on the metamer as on the original, and (ii) the Pearson correlation between ``v``'s activations
``h_l(G')_v`` and ``h_l(G)_v`` exceeds the ``quantile`` (99.9th percentile) of a null
distribution: correlations ``r(h_l(G)_v, h_l(G)_u)`` between random distinct node pairs of
the original. Graph tasks apply the same test to each graph's pooled layer activations, centred
on the dataset's mean pooled activation (null: random pairs of distinct graphs).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.models import GraphModel

_EPS = 1e-12


def pearson_rows(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Pearson correlation of ``a [N, d]`` and ``b [N, d]``, ``[N]``.

    A row with (near) zero variance has no correlation: it scores 1 if the two rows are equal
    (e.g. both all-zero after a ReLU) and 0 otherwise, never NaN.
    """
    a, b = a.double(), b.double()
    ac, bc = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    na, nb = ac.norm(dim=1), bc.norm(dim=1)
    r = (ac * bc).sum(1) / (na * nb).clamp(min=_EPS)
    flat = (na < 1e-9) | (nb < 1e-9)
    same = (a - b).abs().amax(1) <= 1e-6 * (1 + a.abs().amax(1))
    return torch.where(flat, same.double(), r).float()


def null_threshold(h: Tensor, quantile: float = 0.999, num_pairs: int = 20000, seed: int = 0,
                   distinct_rows: bool = False) -> float:
    """The ``quantile`` of Pearson r between rows of ``h [N, d]`` for random distinct pairs.

    ``distinct_rows`` also drops pairs whose rows are identical: graph datasets hold duplicate
    graphs (MUTAG has isomorphic molecules), whose r = 1 would otherwise make the null unbeatable.
    """
    n = h.size(0)
    if n < 2:
        return 1.0
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(n, (num_pairs,), generator=g)
    v = (u + 1 + torch.randint(n - 1, (num_pairs,), generator=g)) % n  # v != u
    if distinct_rows:
        keep = (h[u] - h[v]).abs().amax(1) > 1e-6 * (1 + h[u].abs().amax(1))
        u, v = u[keep], v[keep]
        if u.numel() == 0:
            return 1.0
    r = pearson_rows(h[u].cpu(), h[v].cpu())
    return float(torch.quantile(r.double(), quantile))


@dataclass
class Validity:
    """Per-item validity: ``mask``, ``same_prediction``, ``pearson`` (``[N]`` or ``[B]``) and the null threshold."""

    mask: Tensor
    same_prediction: Tensor
    pearson: Tensor
    threshold: float

    def rate(self, items: Tensor | None = None) -> float:
        m = self.mask if items is None else self.mask[items]
        return float(m.float().mean()) if m.numel() else float("nan")


def validity_from_activations(h: Tensor, h2: Tensor, pred: Tensor, pred2: Tensor, threshold: float) -> Validity:
    """Validity from precomputed activations ``h, h2 [N, d]`` and predictions ``pred, pred2 [N]``."""
    same = pred.cpu() == pred2.cpu()
    r = pearson_rows(h.cpu(), h2.cpu())
    return Validity(same & (r > threshold), same, r, threshold)


@torch.no_grad()
def node_validity(model: GraphModel, x: Tensor, edge_index: Tensor, x2: Tensor, edge_index2: Tensor,
                  layer: int | None = None, threshold: float | None = None, edge_weight2: Tensor | None = None,
                  quantile: float = 0.999) -> Validity:
    """Validity of every node of a node-task metamer ``(x2, edge_index2)`` of ``(x, edge_index)``.

    ``threshold`` defaults to :func:`null_threshold` of the original activations.
    """
    was = model.training
    model.eval()
    try:
        h = model.embed(x, edge_index, layer=layer)
        h2 = model.embed(x2, edge_index2, edge_weight2, layer=layer)
        pred = model(x, edge_index).argmax(-1)
        pred2 = model(x2, edge_index2, edge_weight2).argmax(-1)
    finally:
        model.train(was)
    if threshold is None:
        threshold = null_threshold(h, quantile)
    return validity_from_activations(h, h2, pred, pred2, threshold)


@torch.no_grad()
def pooled_activations(model: GraphModel, graphs: list, layer: int | None = None, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Graph tasks: ``(pooled layer activations [B, d], predictions [B])`` for PyG ``Data`` graphs.

    Pooling uses the model's own readout (mean, sum or max).
    """
    from torch_geometric.data import Batch

    was = model.training
    model.eval()
    pooled, preds = [], []
    try:
        for start in range(0, len(graphs), batch_size):
            batch = Batch.from_data_list(graphs[start : start + batch_size])
            h = model.embed(batch.x, batch.edge_index, batch=batch.batch, layer=layer)
            pooled.append(model.head.pool(h, batch.batch))
            preds.append(model(batch.x, batch.edge_index, batch=batch.batch).argmax(-1))
    finally:
        model.train(was)
    return torch.cat(pooled), torch.cat(preds)


def graph_validity(model: GraphModel, originals: list, metamers: list, layer: int | None = None,
                   threshold: float | None = None, null_graphs: list | None = None, quantile: float = 0.999) -> Validity:
    """Validity per graph (``[B]``) of graph-task metamers against their originals.

    The null threshold comes from random pairs of distinct graphs in ``null_graphs`` (default:
    ``originals``) unless given.
    """
    h, pred = pooled_activations(model, originals, layer)
    h2, pred2 = pooled_activations(model, metamers, layer)
    # Pooled (sum/mean of ReLU) graph embeddings share a large common component, so raw Pearson r
    # between *random* graphs is ~0.999 and no metamer, not even a near twin, could beat the null.
    # Correlating deviations from the population mean asks "closer than chance" of what differs
    # between graphs. The centre is the mean over ``originals`` (a set's test graphs), so every
    # caller checking the same originals uses the same centre.
    centre = h.mean(0, keepdim=True)
    if threshold is None:
        hn = h if null_graphs is None else pooled_activations(model, null_graphs, layer)[0]
        threshold = null_threshold(hn - centre, quantile, distinct_rows=True)
    return validity_from_activations(h - centre, h2 - centre, pred, pred2, threshold)
