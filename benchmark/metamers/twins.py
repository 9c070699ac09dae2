"""Controls for every metamer: a near twin (small benign perturbation) and a far twin (start point).

- Near twin, features: 1% of the graph's feature ones (at least one) each move to a random
  zero column of the same row, so every row keeps its number of ones; continuous features get
  Gaussian noise of 1% of each feature's standard deviation, clipped to the data's range.
- Near twin, structure: 1% of the undirected edges (at least one) are removed and as many
  random non-edges added (symmetric, no self loops): the edge count is kept.
- Far twin: the optimisation's starting point (``MetamerResult.start_x`` /
  ``start_edge_index``): the same input distance scale, activations not matched.
"""
from __future__ import annotations

import torch
from torch import Tensor

from benchmark.metamers.structure import original_pairs, pairs_to_edge_index


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 7919 + 17)


def near_twin_features(x: Tensor, seed: int, fraction: float = 0.01) -> Tensor:
    """A copy of ``x [N, F]`` with a ``fraction`` of its ones moved within their rows (binary),
    or with noise of ``fraction`` standard deviations (continuous)."""
    g = _gen(seed)
    x = x.clone()
    if not bool(((x == 0) | (x == 1)).all()):
        lo, hi = x.min(0).values, x.max(0).values
        noisy = x + fraction * x.std(0) * torch.randn(x.shape, generator=g)
        return torch.maximum(torch.minimum(noisy, hi), lo)
    ones = torch.nonzero(x)
    if ones.numel() == 0:
        return x
    count = max(1, int(round(fraction * ones.size(0))))
    chosen = ones[torch.randperm(ones.size(0), generator=g)[:count]]
    f = x.size(1)
    for row, col in chosen.tolist():
        zeros = torch.nonzero(x[row] == 0).view(-1)
        if zeros.numel() == 0:
            continue
        new = zeros[torch.randint(zeros.numel(), (1,), generator=g)]
        x[row, col] = 0.0
        x[row, new] = 1.0
    assert x.size(1) == f
    return x


def near_twin_edges(edge_index: Tensor, num_nodes: int, seed: int, fraction: float = 0.01) -> Tensor:
    """Symmetric ``edge_index`` with a ``fraction`` of undirected edges rewired to random non-edges."""
    g = _gen(seed)
    pairs = original_pairs(edge_index, num_nodes)
    m, n = pairs.size(0), num_nodes
    if m == 0 or n < 3:
        return pairs_to_edge_index(pairs)
    count = max(1, int(round(fraction * m)))
    drop = torch.randperm(m, generator=g)[:count]
    keep = torch.ones(m, dtype=torch.bool)
    keep[drop] = False
    existing = pairs[:, 0] * n + pairs[:, 1]
    added = torch.zeros(0, dtype=torch.long)
    for _ in range(100):
        if added.numel() >= count:
            break
        u = torch.randint(n, (4 * count,), generator=g)
        v = torch.randint(n, (4 * count,), generator=g)
        ok = u != v
        keys = torch.minimum(u[ok], v[ok]) * n + torch.maximum(u[ok], v[ok])
        keys = keys[~torch.isin(keys, existing) & ~torch.isin(keys, added)]
        seen: list[int] = []
        for key in keys.tolist():  # first occurrences, in draw order
            if key not in seen:
                seen.append(key)
            if len(seen) + added.numel() >= count:
                break
        added = torch.cat([added, torch.tensor(seen, dtype=torch.long)])
    added = added[:count]
    if added.numel() < count:  # a nearly complete graph: rewire only as much as fits
        keep[drop[added.numel():]] = True
    new_pairs = torch.cat([pairs[keep], torch.stack([added // n, added % n], 1)])
    return pairs_to_edge_index(new_pairs)


def near_twin(x: Tensor, edge_index: Tensor, kind: str, seed: int, fraction: float = 0.01) -> tuple[Tensor, Tensor]:
    """The near twin of an original graph for a metamer ``kind``: perturb what the metamer changes."""
    n = x.size(0)
    x2 = near_twin_features(x, seed, fraction) if kind in ("feature", "joint") else x.clone()
    e2 = near_twin_edges(edge_index, n, seed, fraction) if kind in ("structure", "joint") else edge_index.clone()
    return x2, e2


def far_twin(result) -> tuple[Tensor, Tensor]:
    """The far twin of a :class:`~benchmark.metamers.engine.MetamerResult`: its starting point."""
    return result.start_x.clone(), result.start_edge_index.clone()
