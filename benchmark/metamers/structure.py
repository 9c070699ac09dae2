"""Structure parametrisation: logits over a candidate edge set of size O(|E|), never N x N.

Candidates are undirected pairs ``u < v`` (no self loops): the original edges (optional) plus
``candidate_ratio * |E|`` sampled non-edges, preferably at distance 2 (inside the receptive
field of a 2-layer model), topped up with uniformly random pairs. The model sees every
candidate in both directions with weight ``w`` (1 = present, 0 = absent; the zoo's layers
treat weight 0 exactly as a missing edge). The binary mode keeps exactly ``|E|`` edges per
graph with a straight-through top-``|E|``; the weighted mode optimises ``w = sigmoid(theta)``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from benchmark.metrics.distances import undirected_pairs


def original_pairs(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Undirected edges of a graph as ``[m, 2]`` (``u < v``, sorted, no self loops)."""
    keys = undirected_pairs(edge_index, num_nodes)
    return torch.stack([keys // num_nodes, keys % num_nodes], dim=1)


def pairs_to_edge_index(pairs: Tensor) -> Tensor:
    """``[m, 2]`` undirected pairs -> symmetric ``edge_index [2, 2m]`` sorted by (source, target)."""
    if pairs.numel() == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=pairs.device)
    both = torch.cat([pairs, pairs.flip(1)], dim=0)
    n = int(both.max()) + 1
    order = torch.argsort(both[:, 0] * n + both[:, 1])
    return both[order].t().contiguous()


def sample_candidates(pairs: Tensor, num_nodes: int, ratio: float, source: str, include_original: bool,
                      generator: torch.Generator) -> Tensor:
    """Candidate pairs ``[c, 2]`` for one graph: originals (if kept) first, then sampled non-edges.

    ``round(ratio * m)`` distinct non-edges are drawn (fewer if the graph has fewer): with
    ``source="two_hop"``, endpoints of random 2-step walks first, then uniform pairs; with
    ``source="mixed"``, half of them from 2-step walks and the rest uniform (release v1's
    two-hop pool put 87-92% of a metamer's added edges within 2 hops of the original).
    """
    n, m = num_nodes, pairs.size(0)
    want = int(round(ratio * m))
    existing = pairs[:, 0] * n + pairs[:, 1]
    max_pairs = n * (n - 1) // 2
    want = min(want, max_pairs - m)
    chosen = torch.zeros(0, dtype=torch.long)
    walk_want = {"two_hop": want, "mixed": want // 2}.get(source, 0)
    if walk_want > 0 and m > 0:
        # Random 2-step walks u -> v -> w over the undirected graph (CSR by source).
        both = torch.cat([pairs, pairs.flip(1)], dim=0)
        both = both[torch.argsort(both[:, 0] * n + both[:, 1])]
        deg = torch.bincount(both[:, 0], minlength=n)
        start = torch.cumsum(deg, 0) - deg
        draws = 3 * walk_want + 16
        first = both[torch.randint(both.size(0), (draws,), generator=generator)]
        mid = first[:, 1]
        pick = (torch.rand(draws, generator=generator) * deg[mid]).long()
        last = both[start[mid] + pick.clamp(max=(deg[mid] - 1).clamp(min=0)), 1]
        u, w = first[:, 0], last
        ok = u != w
        lo, hi = torch.minimum(u[ok], w[ok]), torch.maximum(u[ok], w[ok])
        keys = lo * n + hi
        keys = keys[~torch.isin(keys, existing)]
        chosen = _first_unique(keys)[:walk_want]
    tries = 0
    while chosen.numel() < want and tries < 50:
        tries += 1
        need = want - chosen.numel()
        draws = 2 * need + 16
        u = torch.randint(n, (draws,), generator=generator)
        w = torch.randint(n, (draws,), generator=generator)
        ok = u != w
        keys = torch.minimum(u[ok], w[ok]) * n + torch.maximum(u[ok], w[ok])
        keys = keys[~torch.isin(keys, existing) & ~torch.isin(keys, chosen)]
        chosen = torch.cat([chosen, _first_unique(keys)[:need]])
    sampled = torch.stack([chosen // n, chosen % n], dim=1)
    return torch.cat([pairs, sampled]) if include_original else sampled


def _first_unique(keys: Tensor) -> Tensor:
    """Distinct values of ``keys`` in order of first appearance (keeps the sample random)."""
    if keys.numel() == 0:
        return keys
    uniq, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((uniq.numel(),), keys.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(keys.numel()), reduce="amin")
    return uniq[torch.argsort(first)]


def segment_topk_mask(values: Tensor, segment: Tensor, counts: Tensor, num_segments: int) -> tuple[Tensor, Tensor]:
    """Per segment, mark the ``counts[s]`` largest ``values``; also return each segment's cut.

    ``segment [C]`` must be sorted (segments contiguous). Returns ``(mask [C] bool, cut [S])``
    where ``cut`` lies midway between the last kept and the first dropped value. One segment
    uses two ``kthvalue`` calls (linear time); several use one stable sort.
    """
    size = values.numel()
    if num_segments == 1:
        m = int(counts[0])
        if m == 0 or m == size:
            mask = torch.full((size,), m > 0, dtype=torch.bool, device=values.device)
            edge = values.max() + 1 if m == 0 else values.min() - 1
            return mask, edge.reshape(1)
        top = torch.kthvalue(values, size - m + 1).values  # m-th largest
        nxt = torch.kthvalue(values, size - m).values  # (m+1)-th largest
        mask = values >= top
        if int(mask.sum()) == m:
            return mask, (0.5 * (top + nxt)).reshape(1)
    order = torch.argsort(values, descending=True, stable=True)
    order = order[torch.argsort(segment[order], stable=True)]
    sizes = torch.bincount(segment, minlength=num_segments)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.empty_like(order)
    rank[order] = torch.arange(size, device=values.device) - starts[segment[order]]
    mask = rank < counts[segment]
    ranked = values[order]
    pad = torch.cat([ranked, ranked[-1:] - 1.0]) if size else ranked.new_zeros(1)
    last = torch.where(counts > 0, pad[(starts + counts - 1).clamp(min=0)], pad[starts] + 1.0)
    nxt = torch.where(counts < sizes, pad[(starts + counts).clamp(max=size)], last - 2.0)
    return mask, 0.5 * (last + nxt)


class _EdgeSTE(torch.autograd.Function):
    """Forward: exactly the 0/1 mask; backward: the sigmoid surrogate ``s P (1 - P)``."""

    @staticmethod
    def forward(ctx, theta: Tensor, mask: Tensor, cut: Tensor, slope: float) -> Tensor:
        ctx.save_for_backward(theta, cut)
        ctx.slope = slope
        return mask.to(theta.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        theta, cut = ctx.saved_tensors
        p = torch.sigmoid((theta - cut) * ctx.slope)
        return grad * p * (1.0 - p) * ctx.slope, None, None, None


class EdgeLogits(nn.Module):
    """Logits ``theta [C]`` over candidate pairs grouped in contiguous segments (one per graph).

    ``forward()`` returns per-candidate weights ``[C]``: binary mode: the hard top-``m_s`` mask
    of each segment with the sigmoid surrogate gradient (centred on the segment's cut);
    weighted mode: ``sigmoid(slope * theta)`` and a penalty keeping each segment's total at ``m_s``.

    An edit budget ``budget [S]`` (binary mode; needs ``original [C]``, the candidates that are
    original edges) keeps the top ``m_s - b_s`` original edges whatever their logits and fills
    the other ``b_s`` places with the top of the rest: at most ``b_s`` edges are removed and as
    many added.
    """

    def __init__(self, init_logits: Tensor, segment: Tensor, counts: Tensor, mode: str = "binary",
                 slope: float = 1.0, count_weight: float = 1.0, budget: Tensor | None = None,
                 original: Tensor | None = None) -> None:
        super().__init__()
        self.theta = nn.Parameter(init_logits.clone())
        self.register_buffer("segment", segment.long())
        self.register_buffer("counts", counts.long())
        self.num_segments = int(counts.numel())
        self.mode, self.slope, self.count_weight = mode, slope, count_weight
        if (budget is None) != (original is None):
            raise ValueError("an edit budget needs the mask of original candidates, and vice versa")
        self.register_buffer("budget", None if budget is None else torch.minimum(budget.long(), counts.long()))
        self.register_buffer("original", None if original is None else original.bool())

    def _select(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """The kept mask ``[C]`` and the cut ``[S]`` of each segment's (budgeted) top-``m_s``."""
        if self.budget is None:
            return segment_topk_mask(theta, self.segment, self.counts, self.num_segments)
        floor = theta.min() - 1e6  # finite, so every cut stays finite
        forced, _ = segment_topk_mask(torch.where(self.original, theta, floor), self.segment,
                                      self.counts - self.budget, self.num_segments)
        free, cut = segment_topk_mask(torch.where(forced, floor, theta), self.segment, self.budget, self.num_segments)
        return forced | free, cut

    def forward(self) -> tuple[Tensor, Tensor]:
        if self.mode == "weighted":
            w = torch.sigmoid(self.theta * self.slope)
            totals = torch.zeros(self.num_segments, device=w.device).index_add_(0, self.segment, w)
            rel = (totals - self.counts) / self.counts.clamp(min=1)
            return w, self.count_weight * (rel**2).sum()
        mask, cut = self._select(self.theta.detach())
        w = _EdgeSTE.apply(self.theta, mask, cut[self.segment], self.slope)
        return w, self.theta.new_zeros(())

    @torch.no_grad()
    def hard(self) -> Tensor:
        """Binary mode: the kept mask ``[C]`` bool; weighted mode: the weights ``[C]``."""
        if self.mode == "weighted":
            return torch.sigmoid(self.theta * self.slope)
        return self._select(self.theta)[0]
