"""Input distances between an original graph and a metamer (or twin) with the same nodes.

Feature distances compare node feature rows ``x [N, F]`` and ``x2 [N, F]`` node by node; edge
distances compare two undirected edge sets on the same ``N`` nodes. Everything is sparse or
per-edge: nothing here builds an ``N x N`` dense matrix.

WL-subtree similarities use a structure-only Weisfeiler-Lehman relabelling (every node starts
with the same label), computed on the disjoint union of both graphs so they share one label
dictionary; a multiset of neighbour labels is hashed with random 64-bit keys (commutative sum),
so no per-node sorting is needed and collisions have probability ~N^2 / 2^64.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.stats import wasserstein_distance
from torch import Tensor

_EPS = 1e-12


# ----------------------------------------------------------------------------- features
def feature_cosine(x: Tensor, x2: Tensor) -> Tensor:
    """Per-node cosine similarity of feature rows, ``[N]``; two all-zero rows count as 1."""
    x, x2 = x.double(), x2.double()
    dot = (x * x2).sum(1)
    norms = x.norm(dim=1) * x2.norm(dim=1)
    cos = dot / norms.clamp(min=_EPS)
    both_zero = (x.abs().sum(1) == 0) & (x2.abs().sum(1) == 0)
    return torch.where(both_zero, torch.ones_like(cos), cos).float()


def feature_hamming(x: Tensor, x2: Tensor) -> Tensor:
    """Per-node number of differing entries, ``[N]`` (for binary features: flipped bits)."""
    return (x != x2).sum(1).float()


def feature_jaccard(x: Tensor, x2: Tensor) -> Tensor:
    """Per-node Jaccard index of the non-zero sets, ``[N]``; two empty rows count as 1."""
    a, b = x != 0, x2 != 0
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def idf_weights(x: Tensor) -> Tensor:
    """Smoothed inverse document frequency per feature, ``[F]``: ``log((1+N)/(1+df)) + 1``."""
    n = x.size(0)
    df = (x != 0).sum(0).double()
    return (torch.log((1.0 + n) / (1.0 + df)) + 1.0).float()


def frequency_weighted_distance(x: Tensor, x2: Tensor, weights: Tensor | None = None) -> Tensor:
    """Per-node ``1 - cosine`` after weighting features by IDF, ``[N]``.

    Rare features weigh more, so swapping a rare word for a common one costs more than the
    reverse swap of two common words. ``weights`` defaults to the IDF of ``x`` (the original).
    """
    w = idf_weights(x) if weights is None else weights
    return 1.0 - feature_cosine(x * w, x2 * w)


def feature_distances(x: Tensor, x2: Tensor) -> dict[str, float]:
    """Summary feature distances (means over nodes) as plain floats."""
    out = {
        "feature_cosine_mean": float(feature_cosine(x, x2).mean()),
        "feature_hamming_mean": float(feature_hamming(x, x2).mean()),
        "feature_freq_distance_mean": float(frequency_weighted_distance(x, x2).mean()),
    }
    if bool(((x == 0) | (x == 1)).all()) and bool(((x2 == 0) | (x2 == 1)).all()):
        out["feature_jaccard_mean"] = float(feature_jaccard(x, x2).mean())
    return out


# ----------------------------------------------------------------------------- edges
def undirected_pairs(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Sorted unique keys ``u * N + v`` (``u < v``) of an edge set, ignoring direction and self loops."""
    u, v = edge_index[0].long(), edge_index[1].long()
    keep = u != v
    lo, hi = torch.minimum(u[keep], v[keep]), torch.maximum(u[keep], v[keep])
    return torch.unique(lo * num_nodes + hi)


def edge_jaccard(edge_index: Tensor, edge_index2: Tensor, num_nodes: int) -> float:
    """Jaccard index of two undirected edge sets (1 when both are empty)."""
    a = undirected_pairs(edge_index, num_nodes)
    b = undirected_pairs(edge_index2, num_nodes)
    inter = int(torch.isin(a, b).sum())
    union = a.numel() + b.numel() - inter
    return 1.0 if union == 0 else inter / union


def degrees(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Undirected degree per node ``[N]`` (each unordered pair counted once per endpoint)."""
    keys = undirected_pairs(edge_index, num_nodes)
    ends = torch.cat([keys // num_nodes, keys % num_nodes])
    return torch.bincount(ends, minlength=num_nodes)


def degree_distance(edge_index: Tensor, edge_index2: Tensor, num_nodes: int) -> float:
    """Wasserstein-1 distance between the two degree distributions (in degree units)."""
    d1 = degrees(edge_index, num_nodes).numpy()
    d2 = degrees(edge_index2, num_nodes).numpy()
    return float(wasserstein_distance(d1, d2))


# ----------------------------------------------------------------------------- WL subtree
_HASH_SEED = 0x5EED


def _adjacency(edge_index: Tensor, num_nodes: int) -> sp.csr_matrix:
    keys = undirected_pairs(edge_index, num_nodes).numpy()
    u, v = keys // num_nodes, keys % num_nodes
    rows, cols = np.concatenate([u, v]), np.concatenate([v, u])
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(num_nodes, num_nodes))


def wl_labels(adj: sp.csr_matrix, iterations: int) -> list[np.ndarray]:
    """Structure-only WL labels per iteration ``0..iterations``, each ``[N]`` int64 (dense ids)."""
    n = adj.shape[0]
    rng = np.random.default_rng(_HASH_SEED)
    labels = np.zeros(n, dtype=np.int64)
    out = [labels]
    src, dst = adj.nonzero()
    for _ in range(iterations):
        keys = rng.integers(1, 2**63 - 1, size=int(labels.max()) + 1, dtype=np.int64).view(np.uint64)
        own = rng.integers(1, 2**63 - 1, size=int(labels.max()) + 1, dtype=np.int64).view(np.uint64)
        with np.errstate(over="ignore"):
            agg = np.zeros(n, dtype=np.uint64)
            np.add.at(agg, dst, keys[labels[src]])
            signature = agg * np.uint64(0x9E3779B97F4A7C15) + own[labels]
        labels = np.unique(signature, return_inverse=True)[1].astype(np.int64).reshape(-1)
        out.append(labels)
    return out


def _wl_features(adj: sp.csr_matrix, iterations: int, hops: int | None) -> list[sp.csr_matrix]:
    """Per-iteration WL label histograms (iterations ``1..iterations``), each ``[N, K_t]``.

    Row ``v`` counts the labels of the nodes within ``hops`` hops of ``v``; with ``hops=None``
    row ``v`` is just ``v``'s own label (sum the rows for a whole-graph histogram). Iteration 0
    (one shared label) is left out: its histogram is only the ball's size.
    """
    n = adj.shape[0]
    ball = None
    if hops is not None:
        reach = sp.identity(n, format="csr") + adj
        ball = sp.identity(n, format="csr")
        for _ in range(hops):
            ball = ball @ reach
        ball.data[:] = 1.0  # membership, not walk counts
    out = []
    for labels in wl_labels(adj, iterations)[1:]:
        onehot = sp.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, int(labels.max()) + 1))
        out.append(onehot if ball is None else (ball @ onehot).tocsr())
    return out


def _row_cosine(a: sp.csr_matrix, b: sp.csr_matrix) -> np.ndarray:
    dot = np.asarray(a.multiply(b).sum(1)).ravel()
    na = np.sqrt(np.asarray(a.multiply(a).sum(1)).ravel())
    nb = np.sqrt(np.asarray(b.multiply(b).sum(1)).ravel())
    return dot / np.maximum(na * nb, _EPS)


def wl_node_similarity(edge_index: Tensor, edge_index2: Tensor, num_nodes: int, hops: int = 2,
                       iterations: int = 2) -> Tensor:
    """Per-node WL-subtree kernel similarity of each node's ``hops``-hop neighbourhood, ``[N]`` in [0, 1].

    A node's feature map at WL iteration ``t`` is the histogram of iteration-``t`` labels over
    the nodes within ``hops`` hops; the score is the normalised kernel (cosine) between the
    node's maps in the two graphs, averaged over iterations ``1..iterations``.
    """
    n = num_nodes
    union = sp.block_diag([_adjacency(edge_index, n), _adjacency(edge_index2, n)], format="csr")
    sims = [_row_cosine(f[:n], f[n:]) for f in _wl_features(union, iterations, hops)]
    return torch.from_numpy(np.mean(sims, axis=0)).float()


def wl_graph_similarity(edge_index: Tensor, edge_index2: Tensor, num_nodes: int, iterations: int = 3) -> float:
    """Normalised WL-subtree kernel between two graphs on ``num_nodes`` nodes, in [0, 1].

    Mean over iterations ``1..iterations`` of the cosine between whole-graph label histograms.
    """
    n = num_nodes
    union = sp.block_diag([_adjacency(edge_index, n), _adjacency(edge_index2, n)], format="csr")
    sims = []
    for f in _wl_features(union, iterations, None):
        sims.append(_row_cosine(sp.csr_matrix(f[:n].sum(0)), sp.csr_matrix(f[n:].sum(0)))[0])
    return float(np.mean(sims))


def structure_distances(edge_index: Tensor, edge_index2: Tensor, num_nodes: int) -> dict[str, float]:
    """Summary structure distances: edge Jaccard, whole-graph WL similarity, degree W1 distance."""
    return {
        "edge_jaccard": edge_jaccard(edge_index, edge_index2, num_nodes),
        "wl_similarity": wl_graph_similarity(edge_index, edge_index2, num_nodes),
        "degree_distance": degree_distance(edge_index, edge_index2, num_nodes),
    }
