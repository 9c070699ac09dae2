"""Message-passing layers with a differentiable edge-weight path.

Structure metamers optimise a weight per candidate edge, so every layer must take
``edge_weight`` (``[E]``, 1 = edge present, 0 = absent) and be exactly the unweighted layer when
all weights are 1. PyG's GCNConv, GCN2Conv and APPNP already do; SAGE, GIN and GAT(v2) are
written here. Every sum-of-``w * x_j`` layer propagates through one sparse matmul
(:mod:`benchmark.models.propagation`, PyG's gather/scatter sum to float32 rounding on the CPU). Linear maps run *before* aggregation wherever that is mathematically the same, so
the layers aggregate ``hidden``-dim messages rather than raw 1433-dim bag-of-words rows.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric import nn as pyg_nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.utils import add_remaining_self_loops, scatter

from benchmark.models.propagation import FusedPropagation


def _weights(edge_index: Tensor, edge_weight: Tensor | None, like: Tensor) -> Tensor:
    if edge_weight is None:
        return like.new_ones(edge_index.size(1))
    return edge_weight


# PyG compiles a generic ``propagate`` into every MessagePassing subclass that does not define
# one in its own class body, which would shadow the mixin's: hence ``propagate = ...`` below.


class GCNConv(FusedPropagation, pyg_nn.GCNConv):
    """PyG's GCNConv with fused propagation (same parameters, same outputs)."""

    propagate = FusedPropagation.propagate


class GCN2Conv(FusedPropagation, pyg_nn.GCN2Conv):
    """PyG's GCN2Conv with fused propagation (same parameters, same outputs)."""

    propagate = FusedPropagation.propagate


class APPNP(FusedPropagation, pyg_nn.APPNP):
    """PyG's APPNP with fused propagation (same outputs; no parameters)."""

    propagate = FusedPropagation.propagate


class WeightedSAGEConv(FusedPropagation, MessagePassing):
    """GraphSAGE with weighted-mean aggregation: ``W_l mean_w(x_j) + b + W_r x_i``.

    Shapes: ``x [N, in]``, ``edge_index [2, E]``, ``edge_weight [E]`` -> ``[N, out]``.
    ``mean_w`` divides by ``max(sum_j w_ij, 1)``, so 0/1 weights give PyG's mean exactly.
    """

    propagate = FusedPropagation.propagate

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(aggr="add")
        self.lin_l = Linear(in_channels, out_channels, bias=False)
        self.lin_r = Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def reset_parameters(self) -> None:
        self.lin_l.reset_parameters()
        self.lin_r.reset_parameters()
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        w = _weights(edge_index, edge_weight, x)
        summed = self.propagate(edge_index, x=self.lin_l(x), w=w)
        degree = scatter(w, edge_index[1], dim=0, dim_size=x.size(0), reduce="sum").clamp(min=1.0)
        return summed / degree.unsqueeze(-1) + self.bias + self.lin_r(x)

    def message(self, x_j: Tensor, w: Tensor) -> Tensor:
        return w.unsqueeze(-1) * x_j


class WeightedGINConv(FusedPropagation, MessagePassing):
    """GIN: ``MLP((1 + eps) x_i + sum_j w_ij x_j)`` with a two-layer MLP.

    The MLP's first linear map is applied before the sum (same maths, smaller messages).
    Shapes: ``x [N, in]`` -> ``[N, out]``.
    """

    propagate = FusedPropagation.propagate

    def __init__(self, in_channels: int, out_channels: int, hidden: int | None = None, eps: float = 0.0,
                 activation: nn.Module | None = None) -> None:
        super().__init__(aggr="add")
        hidden = hidden or out_channels
        self.eps = eps
        self.lin1 = Linear(in_channels, hidden, bias=False)
        self.bias1 = nn.Parameter(torch.zeros(hidden))
        self.act = activation or nn.ReLU()
        self.lin2 = Linear(hidden, out_channels)

    def reset_parameters(self) -> None:
        self.lin1.reset_parameters()
        nn.init.zeros_(self.bias1)
        self.lin2.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        z = self.lin1(x)
        w = _weights(edge_index, edge_weight, x)
        z = (1.0 + self.eps) * z + self.propagate(edge_index, x=z, w=w)
        return self.lin2(self.act(z + self.bias1))

    def message(self, x_j: Tensor, w: Tensor) -> Tensor:
        return w.unsqueeze(-1) * x_j


class WeightedGATConv(MessagePassing):
    """GAT (Velickovic et al. 2018) or GATv2 (Brody et al. 2022) with edge weights.

    Attention is a *weighted* softmax, ``alpha_ij = w_ij exp(e_ij) / sum_k w_ik exp(e_ik)``:
    weight 0 removes an edge exactly, weight 1 is plain GAT. Self loops get weight 1.
    Shapes: ``x [N, in]`` -> ``[N, heads * out]`` (concat) or ``[N, out]`` (mean over heads).
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int = 1, concat: bool = True,
                 v2: bool = False, dropout: float = 0.0, negative_slope: float = 0.2) -> None:
        super().__init__(aggr="add", node_dim=0)
        self.heads, self.out_channels, self.concat, self.v2 = heads, out_channels, concat, v2
        self.dropout, self.negative_slope = dropout, negative_slope
        self.lin_src = Linear(in_channels, heads * out_channels, bias=False, weight_initializer="glorot")
        if v2:
            self.lin_dst = Linear(in_channels, heads * out_channels, bias=False, weight_initializer="glorot")
            self.att = nn.Parameter(torch.empty(1, heads, out_channels))
        else:
            self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
            self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        self.bias = nn.Parameter(torch.zeros(heads * out_channels if concat else out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin_src.reset_parameters()
        bound = math.sqrt(6.0 / (self.heads + self.out_channels))
        if self.v2:
            self.lin_dst.reset_parameters()
            nn.init.uniform_(self.att, -bound, bound)
        else:
            nn.init.uniform_(self.att_src, -bound, bound)
            nn.init.uniform_(self.att_dst, -bound, bound)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        n, h, c = x.size(0), self.heads, self.out_channels
        w = _weights(edge_index, edge_weight, x)
        edge_index, w = add_remaining_self_loops(edge_index, w, fill_value=1.0, num_nodes=n)
        src, dst = edge_index
        x_src = self.lin_src(x).view(n, h, c)
        if self.v2:
            x_dst = self.lin_dst(x).view(n, h, c)
            scores = (F.leaky_relu(x_src[src] + x_dst[dst], self.negative_slope) * self.att).sum(-1)
        else:
            a_src = (x_src * self.att_src).sum(-1)
            a_dst = (x_src * self.att_dst).sum(-1)
            scores = F.leaky_relu(a_src[src] + a_dst[dst], self.negative_slope)
        # Weighted softmax over each node's incoming edges; the max shift is a constant per node.
        shift = scatter(scores.detach(), dst, dim=0, dim_size=n, reduce="max")
        expo = torch.exp(scores - shift[dst]) * w.unsqueeze(-1)
        denom = scatter(expo, dst, dim=0, dim_size=n, reduce="sum")
        alpha = expo / (denom[dst] + 1e-16)
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        out = self.propagate(edge_index, x=x_src, alpha=alpha)
        out = out.reshape(n, h * c) if self.concat else out.mean(dim=1)
        return out + self.bias

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * x_j


class LinearGlobalAttention(nn.Module):
    """SGFormer's one-layer global attention (Wu et al. 2023), linear in the number of nodes.

    ``Z = D^-1 [V + Q~ (K~^T V) / N]`` with ``D = diag(1 + Q~ (K~^T 1) / N)``, where ``Q~, K~`` are
    ``Q, K`` divided by their Frobenius norms; computed per graph of the batch (``batch [N]``).
    Shapes: ``x [N, in]`` -> ``[N, out]``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.q = nn.Linear(in_channels, out_channels)
        self.k = nn.Linear(in_channels, out_channels)
        self.v = nn.Linear(in_channels, out_channels)

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        from torch_geometric.utils import to_dense_batch

        q, k, v = self.q(x), self.k(x), self.v(x)
        if batch is None:
            batch = x.new_zeros(x.size(0), dtype=torch.long)
        dq, mask = to_dense_batch(q, batch)  # [B, n_max, d]; padding rows are zero
        dk, _ = to_dense_batch(k, batch)
        dv, _ = to_dense_batch(v, batch)
        dq = dq / dq.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1)
        dk = dk / dk.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1)
        n = mask.sum(dim=1).clamp(min=1).view(-1, 1, 1).to(x.dtype)
        numerator = dv + dq @ (dk.transpose(1, 2) @ dv) / n
        denominator = 1.0 + dq @ dk.sum(dim=1, keepdim=True).transpose(1, 2) / n
        return (numerator / denominator)[mask]


class HybridGlobalLocalConv(nn.Module):
    """SGFormer block: ``alpha * GlobalAttention(x) + (1 - alpha) * GCN(x)``.

    Local message passing (with edge weights) plus all-pairs attention, as in GraphGPS, at O(N + E).
    Shapes: ``x [N, in]`` -> ``[N, out]``.
    """

    def __init__(self, in_channels: int, out_channels: int, alpha: float = 0.5) -> None:
        super().__init__()
        self.alpha = alpha
        self.attention = LinearGlobalAttention(in_channels, out_channels)
        self.local = GCNConv(in_channels, out_channels)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None,
                edge_weight: Tensor | None = None) -> Tensor:
        return self.alpha * self.attention(x, batch) + (1 - self.alpha) * self.local(x, edge_index, edge_weight)
