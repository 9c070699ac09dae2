"""The compute and memory budget a submitted config must fit, estimated from the config alone.

Intake builds the declared architecture and loads weights into it; a card that declares
``hidden_channels: 20000`` or ``k_hops: 10**9`` would allocate gigabytes or run for ever before
any check could refuse it. So every config is priced first, from its fields only (no tensor is
allocated), on a reference graph at least as large as every registered dataset's largest graph,
and refused with the estimate in the message when it exceeds the budget.

The estimate is an upper bound that holds for every zoo architecture, not an exact count:

- ``parameters``: ``in*w + L*(2*w*w + 2*w) + (w+1)*out`` with ``w = hidden_channels`` and
  ``L = num_layers`` (two weight matrices per layer covers SAGE, GIN and GCNII; GAT's heads split
  ``w``, they do not multiply it);
- ``activation_bytes``: float32 node states kept for one forward and backward pass, one
  ``[N, w]`` tensor per layer and per propagation hop (``k_hops`` counted for every architecture,
  an over-estimate for those that ignore it), twice (values and gradients), plus one attention
  coefficient per edge, head and layer;
- ``multiply_adds``: one forward pass: dense maps ``N*w*(in + L*w)`` plus messages
  ``E*w*(L + k_hops)`` and attention ``E*heads*L``.

The budget (``DEFAULT_BUDGET``) is about 40x the largest baseline of the zoo on every axis (the
measurement is in the tests) and well inside the 24 GiB of the project's reference machine.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# At least the largest graph of any registered dataset: Amazon Photo has 7,650 nodes and 238,162
# directed edges (tests/test_budget.py checks the registry against these numbers).
REFERENCE_NODES = 10_000
REFERENCE_EDGES = 500_000
_FLOAT_BYTES = 4


@dataclass(frozen=True)
class Budget:
    """Upper limits of :class:`Estimate`'s fields."""

    parameters: int = 50_000_000
    activation_bytes: int = 8 << 30
    multiply_adds: int = 2 * 10**12


DEFAULT_BUDGET = Budget()


@dataclass(frozen=True)
class Estimate:
    """Upper-bound cost of one config on the reference graph (see the module docstring)."""

    parameters: int
    activation_bytes: int
    multiply_adds: int

    def over(self, budget: Budget = DEFAULT_BUDGET) -> list[str]:
        """One phrase per axis where the estimate exceeds ``budget``; empty when it fits."""
        out = []
        for name, unit in (("parameters", ""), ("activation_bytes", " bytes"), ("multiply_adds", "")):
            value, limit = getattr(self, name), getattr(budget, name)
            if value > limit:
                out.append(f"{name.replace('_', ' ')} ~{value:.3g}{unit} > budget {limit:.3g}{unit}")
        return out


def estimate(config: Mapping) -> Estimate:
    """Price a model config (a ``ModelConfig`` field mapping; missing fields take the zoo defaults).

    Args:
        config: ``in_channels``, ``out_channels`` and optionally ``hidden_channels`` (64),
            ``num_layers`` (2), ``heads`` (8), ``k_hops`` (10).
    """
    width = int(config.get("hidden_channels", 64))
    layers = int(config.get("num_layers", 2))
    heads = int(config.get("heads", 8))
    hops = int(config.get("k_hops", 10))
    fan_in, fan_out = int(config["in_channels"]), int(config["out_channels"])
    nodes, edges = REFERENCE_NODES, REFERENCE_EDGES
    parameters = fan_in * width + layers * (2 * width * width + 2 * width) + (width + 1) * fan_out
    activations = 2 * _FLOAT_BYTES * (nodes * width * (layers + hops) + edges * heads * layers)
    work = nodes * width * (fan_in + layers * width) + edges * width * (layers + hops) + edges * heads * layers
    return Estimate(parameters, activations, work)


def budget_problem(config: Mapping, budget: Budget = DEFAULT_BUDGET) -> str | None:
    """A one-line refusal naming each exceeded axis with its estimate, or ``None`` if ``config`` fits."""
    over = estimate(config).over(budget)
    if not over:
        return None
    return (f"the declared config would exceed the compute budget ({'; '.join(over)}; estimated on a "
            f"{REFERENCE_NODES}-node, {REFERENCE_EDGES}-edge graph, see benchmark/budget.py): reduce "
            "hidden_channels, num_layers, heads or k_hops")
