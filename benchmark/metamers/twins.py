"""Controls for every metamer: a near twin (small benign perturbation) and a far twin (start point).

- Near twin, features: 1% of the graph's feature ones (at least one) each move to a random
  zero column of the same row, so every row keeps its number of ones; continuous features get
  Gaussian noise of 1% of each feature's standard deviation, clipped to the data's range.
- Near twin, structure: 1% of the undirected edges (at least one) are removed and as many
  random non-edges added (symmetric, no self loops): the edge count is kept.
- Far twin, protocol v1: the optimisation's starting point (``MetamerResult.start_x`` /
  ``start_edge_index``). Release v1's audit found it is not at the metamer's distance (structure
  far twins kept 16% of the original edges, metamers 41-87%).
- Far twin, protocol v2 (:func:`matched_far_twin`): the original changed by exactly as much as
  its metamer, at random: per node the same number of moved words (binary features), per node
  the same L2 distance (continuous features), the same numbers of removed and added edges with
  added edges drawn like the metamer's candidates (structure). Only the activations differ
  from the metamer's: they are not matched.
- Near twin on small graphs (graph tasks, protocol v2): one change whatever the size, one atom
  type change (one word moved) or one bond swap (one edge rewired).
"""
from __future__ import annotations

import torch
from torch import Tensor

from benchmark.metamers.structure import original_pairs, pairs_to_edge_index, sample_candidates
from benchmark.metrics.distances import undirected_pairs
from benchmark.vocabulary import EDGE_KINDS, FEATURE_KINDS


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 7919 + 17)


def near_twin_features(x: Tensor, seed: int, fraction: float = 0.01, count: int | None = None) -> Tensor:
    """A copy of ``x [N, F]`` with a ``fraction`` of its ones (or ``count`` of them) moved within
    their rows (binary), or with noise of ``fraction`` standard deviations (continuous)."""
    g = _gen(seed)
    x = x.clone()
    if not bool(((x == 0) | (x == 1)).all()):
        lo, hi = x.min(0).values, x.max(0).values
        noisy = x + fraction * x.std(0) * torch.randn(x.shape, generator=g)
        return torch.maximum(torch.minimum(noisy, hi), lo)
    ones = torch.nonzero(x)
    if ones.numel() == 0:
        return x
    count = max(1, int(round(fraction * ones.size(0)))) if count is None else min(count, ones.size(0))
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


def near_twin_edges(edge_index: Tensor, num_nodes: int, seed: int, fraction: float = 0.01,
                    count: int | None = None) -> Tensor:
    """Symmetric ``edge_index`` with a ``fraction`` (or ``count``) of undirected edges rewired to random non-edges."""
    g = _gen(seed)
    pairs = original_pairs(edge_index, num_nodes)
    m, n = pairs.size(0), num_nodes
    if m == 0 or n < 3:
        return pairs_to_edge_index(pairs)
    count = max(1, int(round(fraction * m))) if count is None else min(count, m)
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


def near_twin(x: Tensor, edge_index: Tensor, kind: str, seed: int, fraction: float = 0.01,
              count: int | None = None) -> tuple[Tensor, Tensor]:
    """The near twin of an original graph for a metamer ``kind``: perturb what the metamer changes.

    ``count`` (absolute size: changed words / rewired edges) overrides ``fraction`` when given.
    Continuous metamers of 0/1 data get the binary near twin (moved words), a benign change on
    the data's support.
    """
    n = x.size(0)
    x2 = (near_twin_features(x, seed, fraction, count) if kind in FEATURE_KINDS else x.clone())
    e2 = near_twin_edges(edge_index, n, seed, fraction, count) if kind in EDGE_KINDS else edge_index.clone()
    return x2, e2


def moved_words(x: Tensor, x2: Tensor) -> Tensor:
    """Per row, how many ones of ``x2`` are not ones of ``x`` (binary features), ``[N]`` long."""
    return ((x2 != 0) & (x == 0)).sum(1)


def _move_words(x: Tensor, counts: Tensor, g: torch.Generator) -> Tensor:
    """``x [N, F]`` (0/1) with ``counts[v]`` random ones of row ``v`` moved to random zero columns."""
    ones = x != 0
    k = torch.minimum(counts, torch.minimum(ones.sum(1), (~ones).sum(1)))
    first = torch.arange(x.size(1)).unsqueeze(0) < k.unsqueeze(1)  # [N, F]: the first k ranks of each row

    def pick(allowed: Tensor) -> Tensor:
        score = torch.where(allowed, torch.rand(x.shape, generator=g), torch.full(x.shape, -1.0))
        order = score.argsort(1, descending=True)
        return torch.zeros_like(allowed).scatter_(1, order, first)

    off, on = pick(ones), pick(~ones)
    out = x.clone()
    out[off] = 0.0
    out[on] = 1.0
    return out


def _matched_noise(x: Tensor, x2: Tensor, g: torch.Generator, levels: int = 0) -> Tensor:
    """``x`` plus random per-row directions of the same L2 length as ``x2 - x``, kept in the data's range.

    Clipping to the range shortens a step, so the step is rescaled and clipped again (3 rounds).
    """
    lo, hi = x.min(0).values, x.max(0).values
    want = (x2 - x).norm(dim=1, keepdim=True)
    direction = torch.randn(x.shape, generator=g)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp(min=1e-12)
    out = x
    for _ in range(3):
        out = torch.maximum(torch.minimum(out + direction * (want - (out - x).norm(dim=1, keepdim=True)), hi), lo)
    if levels:
        from benchmark.metamers.feature import quantize

        out = quantize(out, lo, hi, levels)
    return out


def matched_far_twin(x: Tensor, edge_index: Tensor, x2: Tensor, edge_index2: Tensor, kind: str, seed: int,
                     candidate_source: str = "mixed", levels: int = 0) -> tuple[Tensor, Tensor]:
    """A far twin of the metamer ``(x2, edge_index2)`` of ``(x, edge_index)`` at the metamer's own input distance.

    Feature kinds: binary 0/1 data and kind ``feature``: per row the metamer's number of moved
    words, moved at random; otherwise (continuous): per row the metamer's L2 distance in a random
    direction (``levels``: stored on the metamer's quantisation). Edge kinds: the metamer's
    numbers of removed and added edges, removed at random, added from ``candidate_source``.
    """
    g = _gen(seed)
    n = x.size(0)
    far_x = x.clone()
    if kind in FEATURE_KINDS:
        binary = bool(((x == 0) | (x == 1)).all()) and bool(((x2 == 0) | (x2 == 1)).all())
        far_x = _move_words(x, moved_words(x, x2), g) if binary else _matched_noise(x, x2, g, levels)
    far_e = edge_index.clone()
    if kind in EDGE_KINDS:
        pairs = original_pairs(edge_index, n)
        keys, keys2 = pairs[:, 0] * n + pairs[:, 1], undirected_pairs(edge_index2, n)
        removed = int((~torch.isin(keys, keys2)).sum())
        added = int((~torch.isin(keys2, keys)).sum())
        keep = torch.ones(pairs.size(0), dtype=torch.bool)
        keep[torch.randperm(pairs.size(0), generator=g)[:removed]] = False
        new = torch.zeros(0, 2, dtype=torch.long)
        if added and pairs.size(0):
            new = sample_candidates(pairs, n, added / pairs.size(0), candidate_source, False, g)[:added]
        far_e = pairs_to_edge_index(torch.cat([pairs[keep], new]))
    return far_x, far_e


def far_twin(result) -> tuple[Tensor, Tensor]:
    """The far twin of a :class:`~benchmark.metamers.engine.MetamerResult`: its starting point."""
    return result.start_x.clone(), result.start_edge_index.clone()
