import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.nn import GATConv, GATv2Conv, GINConv, SAGEConv

from benchmark.errors import UserError
from benchmark.models import MODEL_REGISTRY, ModelConfig, build_model, default_config, model_names
from benchmark.models.layers import WeightedGATConv, WeightedGINConv, WeightedSAGEConv

REQUIRED = {"mlp", "gcn", "sage", "gat", "gatv2", "gin", "appnp", "gcnii", "sgc", "sgformer"}


def small_graph(n=30, f=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < 0.3).float()
    src = torch.randint(0, n, (80,), generator=g)
    dst = torch.randint(0, n, (80,), generator=g)
    keep = src != dst
    ei = torch.stack([torch.cat([src[keep], dst[keep]]), torch.cat([dst[keep], src[keep]])])
    return x, torch.unique(ei, dim=1)


def test_registry_has_the_zoo():
    assert REQUIRED <= set(model_names())


def test_task_specific_defaults_apply_to_their_task_only():
    node, graph = default_config("gin", 12, 3), default_config("gin", 12, 3, task="graph")
    assert (node.norm, node.dropout, node.readout) == ("layer", 0.5, "mean")
    assert (graph.norm, graph.dropout, graph.readout) == ("none", 0.0, "sum")
    assert default_config("gin", 12, 3, norm="none").norm == "none"  # overrides still win
    assert isinstance(build_model(node).blocks[0].norm, torch.nn.LayerNorm)


@pytest.mark.parametrize("arch", sorted(REQUIRED))
def test_every_layer_is_exposed_and_edge_weights_of_one_change_nothing(arch):
    x, ei = small_graph()
    torch.manual_seed(0)
    model = build_model(default_config(arch, 12, 3)).eval()
    logits = model(x, ei)
    assert logits.shape == (30, 3)
    for layer in range(1, model.num_hidden_layers + 1):
        assert model.embed(x, ei, layer=layer).shape[0] == 30
    assert torch.allclose(model(x, ei, torch.ones(ei.size(1))), logits, atol=1e-6)
    assert torch.allclose(model(x.to_sparse(), ei), logits, atol=1e-6)
    with pytest.raises(UserError, match="valid layers"):
        model.embed(x, ei, layer=model.num_hidden_layers + 1)


@pytest.mark.parametrize("arch", ["gcn", "sage", "gin", "gat", "gatv2", "appnp", "gcnii", "sgformer"])
def test_zero_edge_weight_equals_removing_the_edge(arch):
    x, ei = small_graph()
    torch.manual_seed(0)
    model = build_model(default_config(arch, 12, 3)).eval()
    drop = torch.zeros(ei.size(1), dtype=torch.bool)
    drop[::5] = True
    weights = (~drop).float()
    # Remove both directions of each dropped edge so that the graph stays symmetric.
    assert torch.allclose(model(x, ei, weights), model(x, ei[:, ~drop]), atol=1e-5)


@pytest.mark.parametrize("arch", sorted(REQUIRED))
def test_graph_classification_variant(arch):
    graphs = []
    for seed in range(4):
        x, ei = small_graph(n=10 + seed, f=7, seed=seed)
        graphs.append(__import__("torch_geometric").data.Data(x=x, edge_index=ei))
    batch = Batch.from_data_list(graphs)
    model = build_model(default_config(arch, 7, 2, task="graph")).eval()
    assert model(batch.x, batch.edge_index, batch=batch.batch).shape == (4, 2)


def test_weighted_layers_match_pyg_reference_layers():
    x, ei = small_graph()
    torch.manual_seed(0)
    ours, ref = WeightedSAGEConv(12, 8), SAGEConv(12, 8)
    ref.lin_l.weight.data.copy_(ours.lin_l.weight)
    ref.lin_l.bias.data.copy_(ours.bias)
    ref.lin_r.weight.data.copy_(ours.lin_r.weight)
    assert torch.allclose(ours(x, ei), ref(x, ei), atol=1e-5)

    ours_gin = WeightedGINConv(12, 8, hidden=8)
    ref_gin = GINConv(torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8)))
    ref_gin.nn[0].weight.data.copy_(ours_gin.lin1.weight)
    ref_gin.nn[0].bias.data.copy_(ours_gin.bias1)
    ref_gin.nn[2].weight.data.copy_(ours_gin.lin2.weight)
    ref_gin.nn[2].bias.data.copy_(ours_gin.lin2.bias)
    assert torch.allclose(ours_gin(x, ei), ref_gin(x, ei), atol=1e-5)

    for v2, cls in ((False, GATConv), (True, GATv2Conv)):
        ours_gat = WeightedGATConv(12, 4, heads=2, v2=v2)
        ref_gat = cls(12, 4, heads=2, share_weights=False) if v2 else cls(12, 4, heads=2)
        if v2:
            ref_gat.lin_l.weight.data.copy_(ours_gat.lin_src.weight)
            ref_gat.lin_r.weight.data.copy_(ours_gat.lin_dst.weight)
            ref_gat.lin_l.bias.data.zero_()
            ref_gat.lin_r.bias.data.zero_()
            ref_gat.att.data.copy_(ours_gat.att)
        else:
            ref_gat.lin.weight.data.copy_(ours_gat.lin_src.weight)
            ref_gat.att_src.data.copy_(ours_gat.att_src)
            ref_gat.att_dst.data.copy_(ours_gat.att_dst)
        ref_gat.bias.data.copy_(ours_gat.bias)
        assert torch.allclose(ours_gat(x, ei), ref_gat(x, ei), atol=1e-5), cls.__name__


def test_config_round_trips_through_json_and_rejects_bad_values():
    config = default_config("gat", 1433, 7, residual=True, activation="gelu", norm="layer")
    assert ModelConfig.from_json(config.to_json()) == config
    with pytest.raises(UserError, match="valid fields"):
        ModelConfig.from_dict({**config.to_dict(), "hiden_channels": 3})
    with pytest.raises(UserError, match="valid activations"):
        default_config("gcn", 5, 2, activation="swishh")
    with pytest.raises(UserError, match="valid models"):
        default_config("gcnn", 5, 2)
    with pytest.raises(UserError, match="dropout"):
        default_config("gcn", 5, 2, dropout=1.5)


def test_residual_projection_and_norms_build():
    x, ei = small_graph()
    for norm in ("batch", "layer"):
        model = build_model(default_config("gcn", 12, 3, residual=True, norm=norm, num_layers=3)).eval()
        assert model(x, ei).shape == (30, 3)
        assert model.blocks[0].skip is not None and model.blocks[1].skip is None


def test_registry_descriptions_are_present():
    assert all(spec.description for spec in MODEL_REGISTRY.values())
