import ast
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.nn import GATConv, GATv2Conv, GINConv, GraphConv, SAGEConv

from benchmark.errors import UserError
from benchmark.models import (
    MODEL_REGISTRY,
    ArchSpec,
    ConvStack,
    ModelConfig,
    build_model,
    default_config,
    model_names,
    register_architecture,
)
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


# -- Adding an architecture is one class ---------------------------------------------------------------------------

class EdgeWeightedGraphConv(ConvStack):
    """A test-only architecture: PyG's GraphConv (not in the zoo), stacked by ConvStack's one hook."""

    spec = ArchSpec("test-graphconv", "GraphConv (Morris et al. 2019), test-only.", {"hidden_channels": 16},
                    {"lr": 0.01, "weight_decay": 5e-4, "epochs": 3, "patience": 3})

    def init_conv(self, in_dim, out_dim, final):
        return GraphConv(in_dim, out_dim, aggr="add")


@pytest.fixture
def registered_graphconv():
    register_architecture(EdgeWeightedGraphConv)
    try:
        yield EdgeWeightedGraphConv
    finally:
        MODEL_REGISTRY.pop("test-graphconv")


def test_a_new_architecture_is_one_registered_class(registered_graphconv, cora, mutag):
    from benchmark.metamers import generate_metamers
    from benchmark.training import train_model

    assert "test-graphconv" in model_names()
    config = ModelConfig.from_json(default_config("test-graphconv", cora.num_features, cora.num_classes).to_json())
    assert config.hidden_channels == 16  # the spec's defaults apply
    torch.manual_seed(0)
    start = build_model(config)
    assert type(start) is EdgeWeightedGraphConv and start.num_hidden_layers == 1
    assert set(start.state_dict()) == {f"{m}.layer.{p}" for m in ("blocks.0", "head")
                                       for p in ("lin_rel.weight", "lin_rel.bias", "lin_root.weight")}
    model, metrics = train_model(cora, config, seed=0, epochs=2)  # the spec's training defaults apply too
    assert metrics["train_config"]["epochs"] == 2 and metrics["train_config"]["patience"] == 3
    assert not torch.equal(model.state_dict()["head.layer.lin_rel.weight"], start.state_dict()["head.layer.lin_rel.weight"])
    result = generate_metamers(model, cora.data, "structure", [0], progress=False, max_iterations=2)[0]
    assert result.iterations == 2 and result.edge_index.size(1) > 0
    graph_model = build_model(default_config("test-graphconv", mutag.num_features, mutag.num_classes, task="graph"))
    batch = Batch.from_data_list(list(mutag.graphs[:3]))
    assert graph_model.eval()(batch.x, batch.edge_index, batch=batch.batch).shape == (3, mutag.num_classes)


def test_registration_refuses_taken_names_and_classes_without_a_spec(registered_graphconv):
    with pytest.raises(UserError, match="already registered"):
        register_architecture(registered_graphconv)

    class NoSpec(ConvStack):
        pass

    with pytest.raises(UserError, match="spec = ArchSpec"):
        register_architecture(NoSpec)


def test_gcnii_head_from_refuses_later_layers():
    x, ei = small_graph()
    model = build_model(default_config("gcnii", 12, 3)).eval()
    with pytest.raises(UserError, match="gcnii's later layers need the first layer's states"):
        model.head_from(model.embed(x, ei, layer=2), ei, layer=2)


# -- Import floors: the registry's data never imports the builders --------------------------------------------------

MODELS_DIR = Path(__file__).resolve().parents[1] / "benchmark" / "models"
# Which benchmark.models modules each one may import (anywhere in the file, lazy imports included).
FLOORS = {
    "registry": set(),
    "config": {"registry"},
    "base": {"registry", "config"},
    "zoo": {"registry", "config", "base", "layers"},
    "layers": {"propagation"},
    "propagation": set(),
}


def _model_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                 else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        found |= {n.split(".")[2] for n in names if n.startswith("benchmark.models.")}
    return found


def test_model_modules_import_only_the_floors_below_them():
    modules = {p.stem for p in MODELS_DIR.glob("*.py")} - {"__init__"}
    assert modules == set(FLOORS), "a new module in benchmark/models needs its floor in FLOORS"
    for name, allowed in FLOORS.items():
        imported = _model_imports(MODELS_DIR / f"{name}.py")
        assert imported <= allowed, f"benchmark.models.{name} imports {sorted(imported - allowed)}"
    registry_text = (MODELS_DIR / "registry.py").read_text()
    assert "import torch" not in registry_text and "from torch" not in registry_text  # data only
