"""What every zoo architecture is made of: blocks, a graph readout, and ``GraphModel`` with its hooks.

Every model is a stack of *blocks* (the hidden layers whose node activations metamers match)
followed by a *head* (the classifier). ``model.embed(x, edge_index, layer=l)`` returns block
``l``'s output ``[N, d_l]`` for ``l`` in ``1..model.num_hidden_layers``; the default metamer layer
is the last one, the head's input. ``model.stage(..., stage=s)`` also accepts the logits,
``s = num_hidden_layers + 1`` (the late stage of Feather et al.). Every model takes
``edge_weight`` (structure metamers).

An architecture is a subclass that fills two hooks, as in PyG's ``BasicGNN``:
``init_blocks(config)`` returns the blocks and ``init_head(config, width)`` the classifier
(default: :class:`GraphHead` for graph tasks, else ``init_output``: a linear output block).
:class:`ConvStack` narrows that to one hook, ``init_conv(in_dim, out_dim, final)``, for the
plain "conv, conv, ..., conv" stacks. How a block calls its layer is the block's class
(:class:`DenseBlock`, :class:`MessagePassingBlock`, ...), so no code switches on names.

Module attribute names (``blocks.<i>.layer``, ``.skip``, ``.norm``, ``head``) are the
state-dict keys of every shipped checkpoint: they must not change. Layers are built in the
order blocks first, then head, and within a block the layer before its skip projection: the
order in which a seeded model draws its initial weights.
"""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from benchmark.errors import UserError
from benchmark.models.config import ModelConfig
from benchmark.models.registry import ArchSpec


def activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "elu": nn.ELU(), "gelu": nn.GELU(), "leaky_relu": nn.LeakyReLU(0.2),
            "silu": nn.SiLU(), "tanh": nn.Tanh()}[name]


def _norm(name: str, dim: int) -> nn.Module:
    return {"none": nn.Identity(), "batch": nn.BatchNorm1d(dim), "layer": nn.LayerNorm(dim)}[name]


class Graph:
    """What a layer may need besides node states: edges, weights, graph ids, first-layer states."""

    __slots__ = ("edge_index", "edge_weight", "batch", "h0")

    def __init__(self, edge_index: Tensor, edge_weight: Tensor | None, batch: Tensor | None) -> None:
        self.edge_index, self.edge_weight, self.batch = edge_index, edge_weight, batch
        self.h0: Tensor | None = None


class Block(nn.Module):
    """``dropout -> layer -> norm -> activation (+ residual)``; subclasses say how to call ``layer``.

    ``final`` (the node task's output block) has no norm, activation or residual.
    ``linear`` (a parameter-free propagation such as APPNP's) has none of them and no dropout.
    """

    def __init__(self, layer: nn.Module, in_dim: int, out_dim: int, config: ModelConfig,
                 final: bool = False, residual: bool | None = None, linear: bool = False) -> None:
        super().__init__()
        self.layer, self.final, self.out_dim = layer, final, out_dim
        self.dropout = 0.0 if linear else config.dropout
        self.norm = nn.Identity() if final or linear else _norm(config.norm, out_dim)
        self.act = nn.Identity() if final or linear else activation(config.activation)
        use_residual = config.residual if residual is None else residual
        self.residual = use_residual and not final
        # A projection keeps the skip meaningful where the width changes (e.g. 1433 -> 64).
        self.skip = nn.Linear(in_dim, out_dim, bias=False) if self.residual and in_dim != out_dim else None

    def call_layer(self, z: Tensor, graph: Graph) -> Tensor:
        raise NotImplementedError

    def forward(self, h: Tensor, graph: Graph) -> Tensor:
        z = F.dropout(h, p=self.dropout, training=self.training)
        z = self.act(self.norm(self.call_layer(z, graph)))
        if self.residual:
            z = z + (self.skip(h) if self.skip is not None else h)
        return z


class DenseBlock(Block):
    """A layer of node states alone (``nn.Linear``): ``layer(z)``."""

    def call_layer(self, z: Tensor, graph: Graph) -> Tensor:
        return self.layer(z)


class MessagePassingBlock(Block):
    """A weighted message-passing layer: ``layer(z, edge_index, edge_weight)``."""

    def call_layer(self, z: Tensor, graph: Graph) -> Tensor:
        return self.layer(z, graph.edge_index, graph.edge_weight)


class InitialResidualBlock(Block):
    """GCNII's layer, which also takes the first block's states: ``layer(z, h0, edge_index, edge_weight)``."""

    def call_layer(self, z: Tensor, graph: Graph) -> Tensor:
        return self.layer(z, graph.h0, graph.edge_index, graph.edge_weight)


class GlobalBlock(Block):
    """A layer that also attends within each graph of the batch: ``layer(z, edge_index, batch, edge_weight=)``."""

    def call_layer(self, z: Tensor, graph: Graph) -> Tensor:
        return self.layer(z, graph.edge_index, graph.batch, edge_weight=graph.edge_weight)


class GraphHead(nn.Module):
    """Readout for graph classification: pool node states, then a two-layer MLP."""

    def __init__(self, config: ModelConfig, in_dim: int) -> None:
        super().__init__()
        self.pool = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}[config.readout]
        self.lin1 = nn.Linear(in_dim, config.hidden_channels)
        self.act = activation(config.activation)
        self.dropout = config.dropout
        self.lin2 = nn.Linear(config.hidden_channels, config.out_channels)

    def forward(self, h: Tensor, graph: Graph) -> Tensor:
        batch = graph.batch if graph.batch is not None else h.new_zeros(h.size(0), dtype=torch.long)
        g = self.act(self.lin1(self.pool(h, batch)))
        return self.lin2(F.dropout(g, p=self.dropout, training=self.training))


class GraphModel(nn.Module):
    """A registered architecture built from a :class:`ModelConfig`.

    ``forward(x, edge_index, edge_weight=None, batch=None)`` -> logits ``[N, C]`` (node task) or
    ``[B, C]`` (graph task). ``x`` may be dense ``[N, F]`` or a torch sparse tensor.

    Subclasses set ``spec`` (its registry entry) and implement :meth:`init_blocks`; they may
    override :meth:`init_head` or just the node task's :meth:`init_output`.
    ``later_layers_need_h0`` marks models whose later blocks read the first block's states
    (GCNII), which :meth:`head_from` cannot supply.
    """

    spec: ClassVar[ArchSpec]
    later_layers_need_h0: ClassVar[bool] = False

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        blocks = self.init_blocks(config)
        if not blocks:
            raise UserError(f"{config.arch}: init_blocks returned no blocks; a model needs at least one hidden layer")
        width = blocks[-1].out_dim
        self.blocks = nn.ModuleList(blocks)
        self.head = self.init_head(config, width)

    def init_blocks(self, config: ModelConfig) -> list[Block]:
        """The hidden blocks, in order (at least one); their outputs are the metamer layers."""
        raise NotImplementedError

    def init_head(self, config: ModelConfig, width: int) -> nn.Module:
        """The classifier on the last block's ``width``-dim states: a readout for graph tasks, else :meth:`init_output`."""
        if config.task == "graph":
            return GraphHead(config, width)
        return self.init_output(config, width)

    def init_output(self, config: ModelConfig, width: int) -> Block:
        """The node task's output block (no norm, activation or residual); default: a linear map."""
        return DenseBlock(nn.Linear(width, config.out_channels), width, config.out_channels, config, final=True)

    @property
    def num_hidden_layers(self) -> int:
        """Valid ``layer`` values for :meth:`embed` are ``1..num_hidden_layers``."""
        return len(self.blocks)

    @property
    def fixed_prefix(self) -> int:
        """How many leading blocks have no parameters and no dropout (SGC's ``S^K X``: 1).

        Their output depends on the input graph only, so training can compute it once.
        """
        count = 0
        for block in self.blocks:
            if block.dropout > 0 or any(True for _ in block.parameters()):
                break
            count += 1
        return count

    @property
    def default_layer(self) -> int:
        return self.num_hidden_layers

    def check_layer(self, layer: int | None) -> int:
        if layer is None:
            return self.default_layer
        if not isinstance(layer, int) or not 1 <= layer <= self.num_hidden_layers:
            raise UserError(f"layer {layer!r} is not valid for {self.config.arch}; valid layers: "
                            f"1..{self.num_hidden_layers} (default {self.default_layer}, the classifier head's input)")
        return layer

    @property
    def logits_stage(self) -> int:
        """The stage number of the logits: one past the last hidden layer."""
        return self.num_hidden_layers + 1

    def check_stage(self, stage: int | None) -> int:
        """A metamer stage: a hidden layer ``1..num_hidden_layers`` or the logits (``num_hidden_layers + 1``)."""
        if stage is None:
            return self.default_layer
        if not isinstance(stage, int) or isinstance(stage, bool) or not 1 <= stage <= self.logits_stage:
            raise UserError(f"stage {stage!r} is not valid for {self.config.arch}; valid stages: 1..{self.num_hidden_layers} "
                            f"(hidden layers) and {self.logits_stage} (the logits); default {self.default_layer}")
        return stage

    def stage(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None, batch: Tensor | None = None,
              stage: int | None = None) -> Tensor:
        """Activations at ``stage``: hidden layer ``l`` gives node rows ``[N, d_l]`` (as :meth:`embed`);
        the logits stage gives :meth:`forward`'s output, ``[N, C]`` (node task) or ``[B, C]`` (graph task)."""
        stage = self.check_stage(stage)
        if stage == self.logits_stage:
            return self.forward(x, edge_index, edge_weight, batch)
        return self._run(x, edge_index, edge_weight, batch, stage)[0]

    def _run(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None, batch: Tensor | None,
             upto: int) -> tuple[Tensor, Graph]:
        if x.is_sparse or x.layout != torch.strided:
            x = x.to_dense()
        graph = Graph(edge_index, edge_weight, batch)
        h = x
        for i, block in enumerate(self.blocks[:upto]):
            h = block(h, graph)
            if i == 0:
                graph.h0 = h  # GCNII's initial residual
        return h, graph

    def embed(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None,
              batch: Tensor | None = None, layer: int | None = None) -> Tensor:
        """Node activations ``[N, d_layer]`` after hidden layer ``layer`` (default: the last)."""
        return self._run(x, edge_index, edge_weight, batch, self.check_layer(layer))[0]

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None,
                batch: Tensor | None = None) -> Tensor:
        h, graph = self._run(x, edge_index, edge_weight, batch, self.num_hidden_layers)
        return self.head(h, graph)

    def head_from(self, h: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None,
                  batch: Tensor | None = None, layer: int | None = None) -> Tensor:
        """Logits from activations ``h`` of hidden layer ``layer`` (runs the remaining blocks + head)."""
        start = self.check_layer(layer)
        graph = Graph(edge_index, edge_weight, batch)
        if start >= 1 and self.later_layers_need_h0:
            raise UserError(f"{self.config.arch}'s later layers need the first layer's states; call forward() instead")
        for block in self.blocks[start:]:
            h = block(h, graph)
        return self.head(h, graph)


class ConvStack(GraphModel):
    """``num_layers`` layers of one kind, as PyG's ``BasicGNN``: subclasses implement :meth:`init_conv`.

    Node tasks: ``num_layers - 1`` hidden blocks of ``hidden_channels`` and an output layer of
    the same kind. Graph tasks: ``num_layers`` hidden blocks and a :class:`GraphHead`.
    """

    block_type: ClassVar[type[Block]] = MessagePassingBlock

    def init_conv(self, in_dim: int, out_dim: int, final: bool) -> nn.Module:
        """One layer mapping ``in_dim`` to ``out_dim`` features; ``final``: the node task's output layer."""
        raise NotImplementedError

    def init_blocks(self, config: ModelConfig) -> list[Block]:
        graph_task = config.task == "graph"
        n_hidden = config.num_layers if graph_task else config.num_layers - 1
        if n_hidden < 1:
            raise UserError(f"{config.arch} needs num_layers >= {1 if graph_task else 2} for a {config.task} task")
        blocks, width = [], config.in_channels
        for _ in range(n_hidden):
            blocks.append(self.block_type(self.init_conv(width, config.hidden_channels, final=False),
                                          width, config.hidden_channels, config))
            width = config.hidden_channels
        return blocks

    def init_output(self, config: ModelConfig, width: int) -> Block:
        return self.block_type(self.init_conv(width, config.out_channels, final=True), width, config.out_channels,
                               config, final=True)
