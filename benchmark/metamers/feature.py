"""Feature parametrisations: binary (straight-through top-k per row) and continuous (projected).

Binary features keep every node's number of ones: row ``v`` of the metamer holds exactly
``k_v = nnz(X_v)`` ones, chosen as the top-``k_v`` logits of ``Z_v``. The forward pass sees the
hard 0/1 matrix; the backward pass uses the sigmoid surrogate ``P = sigmoid(s (Z - t_v))``
centred on the row's cut ``t_v`` (straight-through estimator), applied in place without
allocating per-step ``[N, F]`` tensors.

Speed (the feature step must cost about one forward+backward of the model):
- top-k runs over a small per-row pool of the largest logits (``k_max + topk_pool``) that is
  refreshed exactly every ``refresh_every`` steps, not over all ``F`` columns each step;
- the model's input linear maps see a sparse matrix: while :func:`sparse_input` is active, any
  ``Linear`` that receives the hard feature matrix computes ``X W^T`` with an embedding-bag
  over the ``k_v`` active columns instead of a dense ``N x F`` GEMM (its backward is the one
  dense ``grad W`` product the gradient needs anyway).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.dense.linear import Linear as PygLinear


class _SparseRowsLinear(torch.autograd.Function):
    """``X W^T + b`` for a 0/1 ``X`` given by its active columns ``idx [N, k]`` (weights ``keep``)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, idx: Tensor, keep: Tensor) -> Tensor:
        ctx.save_for_backward(x if weight.requires_grad else None, weight)
        ctx.has_bias = bias is not None
        out = F.embedding_bag(idx, weight.t().contiguous(), per_sample_weights=keep, mode="sum")
        return out + bias if bias is not None else out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_w = grad.t() @ x if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None


class _SparseInput:
    """The hard feature tensor of the current step and its active columns."""

    def __init__(self) -> None:
        self.x: Tensor | None = None
        self.idx: Tensor | None = None
        self.keep: Tensor | None = None
        self.fixed: Tensor | None = None  # features that never change (structure metamers) ...
        self.cache: dict[int, Tensor] = {}  # ... so each input Linear's output is computed once

    def matches(self, x: Tensor) -> bool:
        ref = self.x
        return (ref is not None and x.data_ptr() == ref.data_ptr() and x.shape == ref.shape
                and x.stride() == ref.stride())


@contextlib.contextmanager
def sparse_input(model: nn.Module) -> Iterator[_SparseInput]:
    """Route every ``Linear`` of ``model`` that receives the registered hard features through
    :class:`_SparseRowsLinear`. Yields the holder to register ``(x, idx, keep)`` in each step.

    With ``holder.fixed`` set, a Linear applied to exactly that tensor returns its output cached
    on first use (fixed features, frozen weights: the product never changes).
    Other inputs (hidden states, or raw features propagated before any linear map, as in SGC)
    take the module's own forward, so results are the same maths either way.
    """
    holder = _SparseInput()
    patched = []
    for module in model.modules():
        if isinstance(module, (nn.Linear, PygLinear)) and "forward" not in module.__dict__:
            original = module.forward

            def forward(x: Tensor, _m=module, _orig=original) -> Tensor:
                if holder.matches(x):
                    return _SparseRowsLinear.apply(x, _m.weight, _m.bias, holder.idx, holder.keep)
                if holder.fixed is not None and x is holder.fixed and not _m.weight.requires_grad:
                    if id(_m) not in holder.cache:
                        holder.cache[id(_m)] = _orig(x).detach()
                    return holder.cache[id(_m)]
                return _orig(x)

            module.forward = forward
            patched.append(module)
    try:
        yield holder
    finally:
        for module in patched:
            del module.forward


class BinaryFeatures(nn.Module):
    """Logits ``Z [N, F]`` of a binary feature matrix whose row ``v`` keeps ``k[v]`` ones.

    ``init_logits`` are typically ``log(freq_j) + Gumbel`` noise, so the starting point (the
    far twin) is a sample of ``k_v`` distinct features per row drawn by corpus frequency.

    The straight-through estimator is applied by hand rather than through autograd, so no
    ``[N, F]`` tensor is allocated per step: ``forward()`` rewrites the persistent hard matrix
    ``x`` (a leaf that collects ``dL/dX``) in ``O(N k)``, and after ``backward()``
    :meth:`logit_grad` turns ``x.grad`` in place into ``Z.grad = dL/dX * s P (1 - P)`` with
    ``P = sigmoid(s (Z - t_v))`` (plus the margin penalty's gradient).
    """

    def __init__(self, init_logits: Tensor, k: Tensor, slope: float = 1.0, margin: float = 0.5,
                 margin_weight: float = 0.0, topk_pool: int = 32, refresh_every: int = 10) -> None:
        super().__init__()
        self.z = nn.Parameter(init_logits.clone())
        self.k = k.long().to(init_logits.device)
        n, f = init_logits.shape
        self.kmax = int(k.max()) if k.numel() else 0
        self.pool = min(f, self.kmax + 1 + topk_pool)
        self.slope, self.margin, self.margin_weight = slope, margin, margin_weight
        self.refresh_every = refresh_every
        self._cand: Tensor | None = None
        self._step = 0
        self.x = torch.zeros_like(init_logits).requires_grad_(True)  # the hard matrix, reused each step
        self._tmp = torch.empty_like(init_logits)
        self.idx: Tensor | None = None  # [N, kmax] columns of the current hard matrix
        self.keep: Tensor | None = None  # [N, kmax] 1.0 where the column is active (rank < k_v)
        self.cut: Tensor | None = None  # [N] the current per-row cut

    def _select(self) -> tuple[Tensor, Tensor, Tensor]:
        """Hard selection from the current logits: ``(idx [N, kmax], keep [N, kmax], cut [N])``."""
        z = self.z.detach()
        n, f = z.shape
        if self.pool < f:
            if self._cand is None or self._step % self.refresh_every == 0:
                self._cand = z.topk(self.pool, dim=1, sorted=False).indices
            pool_vals = z.gather(1, self._cand)
        else:
            pool_vals = z
        take = min(self.kmax + 1, pool_vals.size(1))
        vals, pos = pool_vals.topk(take, dim=1)
        cols = pos[:, : self.kmax]
        idx = self._cand.gather(1, cols) if self.pool < f else cols
        ranks = torch.arange(self.kmax, device=z.device)
        keep = (ranks.unsqueeze(0) < self.k.unsqueeze(1)).to(z.dtype)
        # The cut: midway between the k-th and (k+1)-th largest logit of each row.
        ext = torch.cat([vals[:, :1] + 1.0, vals, vals[:, -1:] - 1.0], dim=1)
        cut = 0.5 * (ext.gather(1, self.k.unsqueeze(1)) + ext.gather(1, (self.k + 1).unsqueeze(1))).squeeze(1)
        return idx, keep, cut

    def forward(self) -> tuple[Tensor, Tensor]:
        """Returns ``(X [N, F] hard 0/1 leaf, regulariser 0)``; call :meth:`logit_grad` after backward."""
        idx, keep, cut = self._select()
        self._step += 1
        with torch.no_grad():
            if self.idx is not None:
                self.x.scatter_(1, self.idx, 0.0)
            self.x.scatter_(1, idx, keep)
        self.x.grad = None
        self.idx, self.keep, self.cut = idx, keep, cut
        return self.x, self.z.new_zeros(())

    @torch.no_grad()
    def logit_grad(self) -> None:
        """Set ``Z.grad`` from ``X.grad`` (straight-through, sigmoid surrogate) and the margin penalty."""
        grad = self.x.grad
        self.x.grad = None
        if grad is None:  # the loss does not depend on the features (cannot happen for zoo models)
            self.z.grad = None
            return
        p = torch.sub(self.z, self.cut.unsqueeze(1), out=self._tmp)
        if self.slope != 1.0:
            p.mul_(self.slope)
        p.sigmoid_()
        torch.ops.aten.sigmoid_backward.grad_input(grad, p, grad_input=grad)
        if self.slope != 1.0:
            grad.mul_(self.slope)
        if self.margin_weight > 0:
            cols = self._cand if self.pool < self.z.size(1) else torch.arange(self.z.size(1), device=grad.device).expand_as(self.z)
            zp = self.z.gather(1, cols) - self.cut.unsqueeze(1)
            on = zp > 0  # entries above the cut are the kept ones
            sign = on.to(zp.dtype) * 2 - 1
            active = (self.margin - sign * zp) > 0
            # d/dz of margin_weight * mean(relu(margin - sign * (z - cut))) over the pool
            grad.scatter_add_(1, cols, -(self.margin_weight / zp.numel()) * sign * active.to(zp.dtype))
        self.z.grad = grad

    @torch.no_grad()
    def hard(self) -> Tensor:
        """The current hard matrix ``[N, F]`` (a copy, no gradient)."""
        idx, keep, _ = self._select()
        return torch.zeros_like(self.z).scatter_(1, idx, keep)


class ContinuousFeatures(nn.Module):
    """Continuous features ``X [N, F]`` optimised directly, projected after every step into the
    data's per-feature range ``[lo_j, hi_j]`` (columns that are always 0 stay 0: the support)."""

    def __init__(self, init: Tensor, lo: Tensor, hi: Tensor) -> None:
        super().__init__()
        self.register_buffer("lo", lo)
        self.register_buffer("hi", hi)
        self.x = nn.Parameter(torch.maximum(torch.minimum(init, hi), lo))

    def forward(self) -> tuple[Tensor, Tensor]:
        return self.x, self.x.new_zeros(())

    @torch.no_grad()
    def project(self) -> None:
        self.x.copy_(torch.maximum(torch.minimum(self.x, self.hi), self.lo))

    @torch.no_grad()
    def hard(self) -> Tensor:
        return self.x.detach().clone()


def quantize(x: Tensor, lo: Tensor, hi: Tensor, levels: int) -> Tensor:
    """``x [N, F]`` rounded to ``levels`` evenly spaced values of each feature's range ``[lo_j, hi_j]``.

    Stored continuous metamers use it (a Cora record holds 3.9M values; 256 levels make each a
    one-byte dictionary code in the parquet shard). Constant columns stay at ``lo_j``.
    """
    span = (hi - lo).clamp(min=0)
    scale = torch.where(span > 0, span / (levels - 1), torch.ones_like(span))
    q = torch.round((x - lo) / scale).clamp(min=0, max=levels - 1)
    return torch.where(span > 0, lo + q * scale, lo.expand_as(x)).to(x.dtype)
