"""Custom architectures end to end (issue 14.5): the plain-PyG models of ``examples/`` export, load
and run as their eager selves; graph pooling exports only with the size passed in; the submission
writer gives the same bytes twice; zoo models export too (their fused propagation steps aside).

Untrained models on real data: what is tested is the format, not accuracy (the checked-in entries
``submissions/graphconv-jk``, ``gatv2-edgedrop`` and ``gin-attnpool`` are re-scored by CI).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import global_mean_pool

from benchmark.errors import UserError
from benchmark.files import sha256_file
from benchmark.programs import export_program, load_program, validate_programs, write_program_submission
from benchmark.release.opened import DatasetDims
from benchmark.submission_card import read_submission

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

from gatv2_edgedrop import GATv2EdgeDrop  # noqa: E402
from gin_attnpool import GINAttnPool  # noqa: E402
from graphconv_jk import GraphConvJK  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
STAGES = ["conv1", "conv2"]


def seeded(make, d, seed=0):
    torch.manual_seed(seed)
    return make(d).eval()


@pytest.mark.parametrize("make", [GraphConvJK, GATv2EdgeDrop, GINAttnPool])
def test_example_models_export_and_run_as_themselves_on_mutag_batches(tmp_path, mutag, make):
    model = seeded(make, mutag)
    program = load_program(export_program(model, "graph", mutag.num_features, tmp_path / "seed-0.pt2"), "graph",
                           STAGES)
    batch = Batch.from_data_list(list(mutag.graphs[:7]))
    with torch.no_grad():
        eager = model(batch.x, batch.edge_index, batch=batch.batch)
        exported = program.stages(batch.x, batch.edge_index, batch=batch.batch)
    assert exported[0].shape == (7, mutag.num_classes)  # one row per graph, however many graphs
    for a, b in zip(exported, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [GraphConvJK, GATv2EdgeDrop])
def test_example_node_models_match_eager_on_cora(tmp_path, cora, make):
    model = seeded(make, cora)
    program = load_program(export_program(model, "node", cora.num_features, tmp_path / "seed-0.pt2"), "node", STAGES)
    data = cora.data
    with torch.no_grad():
        for a, b in zip(program.stages(data.x, data.edge_index), model(data.x, data.edge_index)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


class _DefaultPool(nn.Module):
    """Mean pooling as PyG's docs write it: the pooled size is ``int(batch.max()) + 1``."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(7, 2)

    def forward(self, x, edge_index, edge_weight=None, batch=None):
        return self.lin(global_mean_pool(x, batch)), x


def test_pooling_without_a_size_is_what_torch_export_refuses(tmp_path):
    """The construct that fails (and why the examples pass ``num_graphs(batch)``): a Python int of a tensor."""
    with pytest.raises(Exception, match="data-dependent"):
        export_program(_DefaultPool(), "graph", 7, tmp_path / "seed-0.pt2")


def test_write_program_submission_validates_and_gives_the_same_bytes_twice(tmp_path, cora):
    dims = {"Cora": DatasetDims(cora.num_features, cora.num_classes, "node")}
    card = {"name": "GraphConv-JK", "authors": ["A. Researcher"], "paper_url": None, "code_url": None,
            "license": "MIT", "architecture": {"name": "graphconv-jk", "stages": STAGES}, "seeds": [0, 1, 2],
            "training": {"data": "none (untrained)", "recipe": "torch.manual_seed(seed)"}}
    folders = []
    for name in ("a", "b"):
        models = {"Cora": {s: seeded(GraphConvJK, cora, s) for s in (0, 1, 2)}}
        folders.append(write_program_submission(tmp_path / name / "graphconv-jk", card, models, dims=dims))
    files = sorted(p.relative_to(folders[0]) for p in folders[0].rglob("*") if p.is_file())
    assert [str(f) for f in files] == ["Cora/seed-0.pt2", "Cora/seed-1.pt2", "Cora/seed-2.pt2", "submission.json"]
    assert all(sha256_file(folders[0] / f) == sha256_file(folders[1] / f) for f in files)
    sub = read_submission(folders[0], datasets=["Cora"])
    assert sub.card["tier"] == "self-reported" and sub.card["format"] == "torch.export"
    checked = validate_programs(sub, ["Cora"], dims)
    assert len(checked.models["Cora"]) == 3 and checked.num_parameters["Cora"] == sub.card["num_parameters"]
    with pytest.raises(UserError, match=r"datasets\.Cora\.programs: seeds \[0, 1\], but the card's seeds are \[0, 1, 2\]"):
        write_program_submission(tmp_path / "c", card, {"Cora": {0: models["Cora"][0], 1: models["Cora"][1]}}, dims)


class _ZooStaged(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, edge_index, edge_weight=None, batch=None):
        return self.model(x, edge_index, edge_weight), self.model.embed(x, edge_index, edge_weight)


def test_a_zoo_gcn_exports_and_matches_its_fused_self(tmp_path, cora):
    """The zoo's GCN propagates through a CSR matmul in a custom autograd.Function, which torch.export
    cannot trace; while exporting it takes PyG's gather/scatter path, whose sums are the same."""
    from benchmark.models import build_model, default_config

    torch.manual_seed(0)
    model = build_model(default_config("gcn", cora.num_features, cora.num_classes)).eval()
    program = load_program(export_program(_ZooStaged(model), "node", cora.num_features, tmp_path / "seed-0.pt2"),
                           "node", ["hidden1"])
    data = cora.data
    with torch.no_grad():
        for a, b in zip(program.stages(data.x, data.edge_index), _ZooStaged(model)(data.x, data.edge_index)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
