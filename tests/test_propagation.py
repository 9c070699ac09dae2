"""The fused sparse-matmul propagation is PyG's gather/scatter path, bit for bit, on real Cora."""
from __future__ import annotations

import copy

import pytest
import torch
from torch_geometric.nn import MessagePassing

from benchmark.models import build_model, default_config
from benchmark.models.propagation import weighted_sum


def _uses_fused_path(out: torch.Tensor) -> bool:
    """Whether the autograd graph behind ``out`` contains a fused weighted sum."""
    seen, stack = set(), [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if "_WeightedSum" in type(fn).__name__:
            return True
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return False


def _forward_backward(model, data, seed: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)  # the same dropout masks and edge weights for both paths
    weight = torch.rand(data.edge_index.size(1), requires_grad=True)
    out = model(data.x, data.edge_index, edge_weight=weight)
    out.square().sum().backward()
    return [out.detach(), weight.grad] + [p.grad for p in model.parameters()]


@pytest.mark.parametrize("arch", ["gcn", "sage", "gin", "appnp", "gcnii", "sgc", "sgformer"])
def test_fused_propagation_is_bit_identical_to_pyg_scatter(cora, arch):
    torch.manual_seed(0)
    fused = build_model(default_config(arch, cora.num_features, cora.num_classes)).train()
    generic = copy.deepcopy(fused)
    for module in generic.modules():  # any propagate hook sends PyG down its generic path
        if isinstance(module, MessagePassing):
            module.register_propagate_forward_pre_hook(lambda module, inputs: None)
    torch.manual_seed(3)
    probe_weight = torch.rand(cora.data.edge_index.size(1), requires_grad=True)
    assert _uses_fused_path(fused(cora.data.x, cora.data.edge_index, edge_weight=probe_weight))
    assert not _uses_fused_path(generic(cora.data.x, cora.data.edge_index, edge_weight=probe_weight))
    got = _forward_backward(fused, cora.data, seed=1)
    want = _forward_backward(generic, cora.data, seed=1)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_weighted_sum_matches_definition_with_repeated_edges():
    # Edge order is arbitrary (not sorted) and one edge appears twice: both must be summed.
    edge_index = torch.tensor([[2, 0, 1, 0, 2], [0, 1, 0, 1, 2]])
    weight = torch.tensor([0.5, 2.0, -1.0, 0.25, 3.0], requires_grad=True)
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    out = weighted_sum(edge_index, weight, x)
    want = torch.zeros(3, 2)
    for e in range(edge_index.size(1)):
        want[edge_index[1, e]] += weight[e].detach() * x[edge_index[0, e]].detach()
    assert torch.equal(out.detach(), want)
    out.sum().backward()
    assert torch.equal(weight.grad, x.detach()[edge_index[0]].sum(1))
    assert torch.equal(x.grad, torch.tensor([[2.25, 2.25], [-1.0, -1.0], [3.5, 3.5]]))


@pytest.mark.parametrize("arch", ["gcn", "appnp"])
def test_fused_propagation_under_inference_mode(cora, arch):
    # The evaluator scores under torch.inference_mode(), whose tensors have no version counter.
    torch.manual_seed(0)
    model = build_model(default_config(arch, cora.num_features, cora.num_classes)).eval()
    with torch.no_grad():
        want = model(cora.data.x, cora.data.edge_index)
    with torch.inference_mode():
        got = model(cora.data.x, cora.data.edge_index.clone())
        again = model(cora.data.x, cora.data.edge_index.clone())
    assert torch.equal(got, want) and torch.equal(again, want)
