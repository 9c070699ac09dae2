"""The reference architectures, one registered class each, and ``build_model(config)``.

Each class carries its registry entry (``spec``: description, config defaults, training
defaults) and fills the hooks of :class:`~benchmark.models.base.GraphModel` (or, for plain
stacks, the one hook of :class:`~benchmark.models.base.ConvStack`). Adding an architecture is
one more class here (or in any module imported before use) decorated with
:func:`~benchmark.models.registry.register_architecture`; nothing else switches on its name.
The order of the classes below is the registry's order (``model_names()``, listings).
"""
from __future__ import annotations

from torch import nn

from benchmark.errors import UserError
from benchmark.models.base import (
    Block,
    ConvStack,
    DenseBlock,
    GlobalBlock,
    GraphModel,
    InitialResidualBlock,
    MessagePassingBlock,
    activation,
)
from benchmark.models.config import ModelConfig
from benchmark.models.layers import APPNP as APPNPProp
from benchmark.models.layers import GCN2Conv, GCNConv, HybridGlobalLocalConv, WeightedGATConv, WeightedGINConv, WeightedSAGEConv
from benchmark.models.registry import ArchSpec, arch_spec, register_architecture

_STD_TRAIN = {"lr": 0.01, "weight_decay": 5e-4, "epochs": 500, "patience": 100}


@register_architecture
class MLP(ConvStack):
    spec = ArchSpec("mlp", "Multi-layer perceptron; ignores edges (structure-blind control).", {}, _STD_TRAIN)
    block_type = DenseBlock

    def init_conv(self, in_dim: int, out_dim: int, final: bool) -> nn.Module:
        return nn.Linear(in_dim, out_dim)


@register_architecture
class GCN(ConvStack):
    spec = ArchSpec("gcn", "GCN (Kipf & Welling 2017), symmetric-normalised convolution.", {}, _STD_TRAIN)

    def init_conv(self, in_dim: int, out_dim: int, final: bool) -> nn.Module:
        return GCNConv(in_dim, out_dim)


@register_architecture
class GraphSAGE(ConvStack):
    spec = ArchSpec("sage", "GraphSAGE (Hamilton et al. 2017), mean aggregation + root weight.", {}, _STD_TRAIN)

    def init_conv(self, in_dim: int, out_dim: int, final: bool) -> nn.Module:
        return WeightedSAGEConv(in_dim, out_dim)


@register_architecture
class GIN(ConvStack):
    # Layer norm for node tasks: sums over ~31 neighbours of 259-word rows (Photo) start GIN at
    # logits of std 57 and 2 of 3 seeds never fit; per-node normalisation trains every seed
    # (docs/zoo_gaps.md). Graph tasks (MUTAG) train better without it.
    spec = ArchSpec("gin", "GIN (Xu et al. 2019), sum aggregation + 2-layer MLP; layer norm on node tasks.", {},
                    {**_STD_TRAIN, "lr": 0.005}, node_defaults={"norm": "layer"})

    def init_conv(self, in_dim: int, out_dim: int, final: bool) -> nn.Module:
        return WeightedGINConv(in_dim, out_dim, hidden=self.config.hidden_channels,
                               activation=activation(self.config.activation))


@register_architecture
class GAT(ConvStack):
    spec = ArchSpec("gat", "GAT (Velickovic et al. 2018), 8 heads x 8 channels.",
                    {"activation": "elu", "dropout": 0.6, "heads": 8}, {**_STD_TRAIN, "lr": 0.005})
    v2 = False

    def init_conv(self, in_dim: int, out_dim: int, final: bool) -> nn.Module:
        c = self.config
        if final:  # one head, averaged: the class logits
            return WeightedGATConv(in_dim, out_dim, heads=1, concat=False, v2=self.v2, dropout=c.attn_dropout)
        if out_dim % c.heads:
            raise UserError(f"{c.arch}: hidden_channels ({out_dim}) must be divisible by heads ({c.heads})")
        return WeightedGATConv(in_dim, out_dim // c.heads, heads=c.heads, v2=self.v2, dropout=c.attn_dropout)


@register_architecture
class GATv2(GAT):
    spec = ArchSpec("gatv2", "GATv2 (Brody et al. 2022), dynamic attention.",
                    {"activation": "elu", "dropout": 0.6, "heads": 8}, {**_STD_TRAIN, "lr": 0.005})
    v2 = True


@register_architecture
class APPNP(GraphModel):
    spec = ArchSpec("appnp", "APPNP (Gasteiger et al. 2019): MLP encoder, personalised-PageRank propagation, linear head.",
                    {"k_hops": 10, "alpha": 0.1}, _STD_TRAIN)

    def init_blocks(self, c: ModelConfig) -> list[Block]:
        hid = c.hidden_channels
        blocks: list[Block] = [DenseBlock(nn.Linear(c.in_channels, hid), c.in_channels, hid, c)]
        for _ in range(c.num_layers - 2):
            blocks.append(DenseBlock(nn.Linear(hid, hid), hid, hid, c))
        # Propagation is linear: no dropout, norm, activation or residual around it.
        blocks.append(MessagePassingBlock(APPNPProp(K=c.k_hops, alpha=c.alpha), hid, hid, c, residual=False, linear=True))
        return blocks


@register_architecture
class GCNII(GraphModel):
    spec = ArchSpec("gcnii", "GCNII (Chen et al. 2020): initial residual + identity mapping, 4 layers.",
                    {"num_layers": 4, "dropout": 0.6, "alpha": 0.1, "theta": 0.5}, _STD_TRAIN)
    later_layers_need_h0 = True

    def init_blocks(self, c: ModelConfig) -> list[Block]:
        hid = c.hidden_channels
        blocks: list[Block] = [DenseBlock(nn.Linear(c.in_channels, hid), c.in_channels, hid, c, residual=False)]
        for i in range(c.num_layers):
            conv = GCN2Conv(hid, alpha=c.alpha, theta=c.theta, layer=i + 1, shared_weights=True)
            blocks.append(InitialResidualBlock(conv, hid, hid, c))
        return blocks


@register_architecture
class SGC(GraphModel):
    spec = ArchSpec("sgc", "SGC (Wu et al. 2019): K-hop propagation of raw features, linear head.",
                    {"k_hops": 2, "dropout": 0.0}, {**_STD_TRAIN, "lr": 0.2, "weight_decay": 5e-5})

    def init_blocks(self, c: ModelConfig) -> list[Block]:
        # S^K X: no parameters, so training computes it once (GraphModel.fixed_prefix).
        return [MessagePassingBlock(APPNPProp(K=c.k_hops, alpha=0.0), c.in_channels, c.in_channels, c,
                                    residual=False, linear=True)]


@register_architecture
class SGFormer(GraphModel):
    spec = ArchSpec("sgformer", "SGFormer (Wu et al. 2023) graph transformer: linear global attention + GCN message passing.",
                    {"num_layers": 2, "dropout": 0.5, "alpha": 0.2}, _STD_TRAIN)

    def init_blocks(self, c: ModelConfig) -> list[Block]:
        blocks: list[Block] = []
        width = c.in_channels
        for _ in range(c.num_layers):
            blocks.append(GlobalBlock(HybridGlobalLocalConv(width, c.hidden_channels, alpha=c.alpha), width,
                                      c.hidden_channels, c))
            width = c.hidden_channels
        return blocks


def build_model(config: ModelConfig) -> GraphModel:
    """Build the registered architecture described by ``config`` (weights freshly initialised)."""
    return arch_spec(config.arch).builder(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
