"""Red-flag checks (issue 14.4): every zoo architecture passes; each planted fault fails its own check.

The faulty models are the ones a careless submission would send: dropout left on, a softmax on
the output, a stage detached from the input, node ids read as features. Exported programs are
checked the same way at intake (`validate_programs`), shown on an exported model that softmaxes.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import IntegrityError
from benchmark.models import default_config, model_names
from benchmark.models import build_model
from benchmark.sanity import CHECKS, model_stages_fn, probe_graph, raise_red_flags, red_flags


def failed(flags) -> list[str]:
    return [f.name for f in flags if not f.passed]


@pytest.mark.parametrize("task", ["node", "graph"])
def test_every_zoo_architecture_passes(task):
    skipped = []
    for arch in model_names():
        try:
            model = build_model(default_config(arch, 6, 3, task=task)).eval()
        except Exception as err:  # an architecture without this task is not a failure of the checks
            skipped.append((arch, type(err).__name__))
            continue
        torch.manual_seed(0)
        flags = red_flags(model_stages_fn(model), task, 6)
        assert [f.name for f in flags] == list(CHECKS)
        assert not failed(flags), (arch, [f.detail for f in flags if not f.passed])
    assert len(skipped) < len(model_names()) / 2, skipped


class Faulty(nn.Module):
    """A 2-layer MLP-on-aggregates with one planted fault."""

    def __init__(self, fault: str):
        super().__init__()
        self.fault = fault
        self.lin1, self.lin2 = nn.Linear(6, 8), nn.Linear(8, 3)
        self.ids = nn.Embedding(64, 8)

    def forward(self, x, edge_index, batch=None):
        agg = torch.zeros_like(x).index_add_(0, edge_index[1], x[edge_index[0]]) + x
        h = torch.relu(self.lin1(agg))
        if self.fault == "dropout":
            h = F.dropout(h, 0.5, training=True)
        if self.fault == "node_ids":
            h = h + self.ids(torch.arange(x.size(0)))
        if self.fault == "detached":
            h = torch.relu(self.lin1(torch.ones_like(x)))
        logits = self.lin2(h)
        if self.fault == "softmax":
            logits = logits.softmax(-1)
        return logits, h


@pytest.mark.parametrize("fault,check", [("dropout", "deterministic"), ("softmax", "logits"),
                                         ("node_ids", "permutation"), ("detached", "input_gradient"),
                                         ("detached", "stages_depend_on_input"), ("none", None)])
def test_each_planted_fault_fails_its_check(fault, check):
    torch.manual_seed(0)
    model = Faulty(fault).eval()
    flags = red_flags(lambda x, e, b: model(x, e, b), "node", 6, ["hidden"])
    if check is None:
        assert not failed(flags)
        raise_red_flags(flags, "entry")  # passes silently
        return
    assert check in failed(flags)
    with pytest.raises(IntegrityError, match=f"entry: refused by the red-flag checks.*{check}: "):
        raise_red_flags(flags, "entry")


def test_the_probe_graphs_are_seeded_and_batched():
    x, edge_index, batch = probe_graph("graph", 4)
    assert x.shape == (12, 4) and batch.tolist() == [0] * 7 + [1] * 5
    assert torch.equal(x, probe_graph("graph", 4)[0])
    assert int(edge_index.max()) == 11 and bool((batch[edge_index[0]] == batch[edge_index[1]]).all())


def test_an_exported_program_that_outputs_probabilities_is_refused_at_intake(tmp_path, cora):
    from custom_models import SkipGCN
    from test_programs import write_entry

    from benchmark.submissions import validate_submission

    class Softmaxed(nn.Module):
        def __init__(self, seed):
            super().__init__()
            torch.manual_seed(seed)
            self.inner = SkipGCN(1433, 8, 7).eval()

        def forward(self, x, edge_index, edge_weight=None, batch=None):
            logits, h1 = self.inner(x, edge_index, edge_weight)
            return logits.softmax(-1), h1

    entry = write_entry(tmp_path / "softmaxed", [Softmaxed(s).eval() for s in (0, 1, 2)])
    with pytest.raises(IntegrityError, match=r"(?s)programs refused.*logits: rows lie in \[0, 1\] and sum to 1"):
        validate_submission(entry, ["Cora"])
