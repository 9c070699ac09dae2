"""Red-flag checks on a submitted model, RobustBench's idea adapted to GNNs (issue 14.4).

A model is judged through one function, ``stages_fn(x, edge_index, batch) -> (logits, *stages)``
(:func:`model_stages_fn` adapts a registry model; an exported program's ``ProgramModel.stages``
is one already), run on small seeded random graphs built here, so the checks need no dataset and
cost milliseconds. Each check returns a :class:`Flag`; :func:`raise_red_flags` refuses a model
that fails any of them, naming each failed check and what was measured:

- ``deterministic``: two runs on the same input give the same logits and stages (a model that
  samples at inference, e.g. dropout left on, makes every score a draw);
- ``logits``: the outputs are not probabilities (rows in [0, 1] summing to 1); scores and the
  engine's logits stage expect logits (log-probabilities are logits up to a constant);
- ``input_gradient``: the logits and every declared stage have a non-zero gradient with respect
  to the node features (a zero gradient silently empties the reverse direction: no metamer can
  be optimised through the model);
- ``permutation``: relabelling the nodes (within each graph of a batch, so the batch vector stays
  sorted) permutes node-level outputs and leaves graph-level outputs unchanged (a model that
  fails reads node ids or positions, not the graph);
- ``stages_depend_on_input``: every declared stage changes when the features change (a
  constant stage would make every metamer of it trivially valid).

Tolerances are relative to the outputs' scale and are stated with the constants below; the
permutation check allows float reassociation (sums in another order), nothing more.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.errors import IntegrityError

StagesFn = Callable[[Tensor, Tensor, "Tensor | None"], tuple[Tensor, ...]]

DETERMINISM_RTOL = 1e-6  # two runs of the same input on the same machine
PERMUTATION_RTOL = 1e-4  # the same sums taken in another order (float32)
CHANGE_RTOL = 1e-6  # a stage "changes" when it moves by more than this, relative to its scale
PROBABILITY_ATOL = 1e-4  # rows summing to 1 within this are probabilities

CHECKS = ("deterministic", "logits", "input_gradient", "permutation", "stages_depend_on_input")


@dataclass(frozen=True)
class Flag:
    """The outcome of one check: ``name`` (one of :data:`CHECKS`), ``passed`` and what was measured."""

    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def probe_graph(task: str, num_features: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor | None]:
    """A small seeded graph without symmetries: ``(x [N, F], edge_index [2, E], batch [N] or None)``.

    Node task: one 12-node graph (a ring plus chords). Graph task: two graphs of 7 and 5 nodes in
    one batch, so pooling per graph is exercised.
    """
    g = torch.Generator().manual_seed(seed)
    sizes = [12] if task == "node" else [7, 5]
    edges, offset = [], 0
    for n in sizes:
        ring = torch.arange(n)
        start = torch.arange(0, n - 3, 2)
        chords = torch.stack([start, start + 3])
        pairs = torch.cat([torch.stack([ring, (ring + 1) % n]), chords], 1) + offset
        edges.append(torch.cat([pairs, pairs.flip(0)], 1))
        offset += n
    x = torch.rand(offset, num_features, generator=g)
    batch = None if task == "node" else torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return x, torch.cat(edges, 1), batch


def model_stages_fn(model) -> StagesFn:
    """``stages_fn`` of a registry :class:`~benchmark.models.GraphModel`: logits, then every hidden layer."""
    def run(x, edge_index, batch):
        return (model(x, edge_index, batch=batch),
                *[model.stage(x, edge_index, batch=batch, stage=layer) for layer in range(1, model.num_hidden_layers + 1)])
    return run


def _scale(t: Tensor) -> float:
    return 1.0 + float(t.detach().abs().max()) if t.numel() else 1.0


def _max_diff(a: Tensor, b: Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max()) if a.numel() else 0.0


def _names(outputs: tuple[Tensor, ...], stage_names: list[str] | None) -> list[str]:
    names = list(stage_names or [f"stage {i}" for i in range(1, len(outputs))])
    return ["logits", *names[: len(outputs) - 1]]


def red_flags(stages_fn: StagesFn, task: str, num_features: int, stage_names: list[str] | None = None,
              seed: int = 0) -> list[Flag]:
    """Run every check of :data:`CHECKS` on ``stages_fn`` and return their flags (in that order)."""
    x, edge_index, batch = probe_graph(task, num_features, seed)
    with torch.no_grad():
        first = tuple(stages_fn(x, edge_index, batch))
        second = tuple(stages_fn(x, edge_index, batch))
    names = _names(first, stage_names)
    flags = []

    diffs = {name: _max_diff(a, b) / _scale(a) for name, a, b in zip(names, first, second)}
    worst = max(diffs, key=diffs.get)
    flags.append(Flag("deterministic", diffs[worst] <= DETERMINISM_RTOL,
                      f"largest relative difference between two runs {diffs[worst]:.3g} ({worst}); "
                      f"allowed {DETERMINISM_RTOL:g}"))

    logits = first[0].detach()
    in_unit = bool(((logits >= 0) & (logits <= 1)).all())
    sums_to_one = bool(((logits.sum(-1) - 1).abs() <= PROBABILITY_ATOL).all())
    flags.append(Flag("logits", not (in_unit and sums_to_one),
                      "rows lie in [0, 1] and sum to 1: these are probabilities, submit the logits before softmax"
                      if in_unit and sums_to_one else "not probabilities"))

    zero = []
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        outputs = tuple(stages_fn(xg, edge_index, batch))  # one forward; one backward per output
        for i, (name, out) in enumerate(zip(names, outputs)):
            weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1 + i))
            if not out.requires_grad:
                zero.append(f"{name} (not differentiable)")
                continue
            (grad,) = torch.autograd.grad((out * weight).sum(), xg, allow_unused=True, retain_graph=True)
            if grad is None or not bool(grad.abs().gt(0).any()):
                zero.append(name)
    flags.append(Flag("input_gradient", not zero,
                      f"zero gradient with respect to x at: {', '.join(zero)}" if zero
                      else f"non-zero at {', '.join(names)}"))

    # Within each graph, so a batch vector stays sorted (PyG's convention, which dense-batching layers need).
    gen = torch.Generator().manual_seed(seed + 7)
    if batch is None:
        perm = torch.randperm(x.size(0), generator=gen)
    else:
        counts = torch.bincount(batch).tolist()
        starts = [sum(counts[:i]) for i in range(len(counts))]
        perm = torch.cat([start + torch.randperm(n, generator=gen) for start, n in zip(starts, counts)])
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    with torch.no_grad():
        permuted = tuple(stages_fn(x[perm], inverse[edge_index], None if batch is None else batch[perm]))
    bad = []
    for name, a, b in zip(names, first, permuted):
        expected = a[perm] if a.size(0) == x.size(0) else a  # node rows follow the nodes; graph rows stay
        if b.shape != expected.shape or _max_diff(b, expected) > PERMUTATION_RTOL * _scale(a):
            bad.append(f"{name} ({_max_diff(b, expected) if b.shape == expected.shape else 'shape'})")
    flags.append(Flag("permutation", not bad,
                      f"relabelling the nodes changed: {', '.join(bad)} (allowed relative difference "
                      f"{PERMUTATION_RTOL:g}); the model reads node ids or positions" if bad
                      else "node rows permute with the nodes, graph rows are unchanged"))

    x2 = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed + 13))
    with torch.no_grad():
        other = tuple(stages_fn(x2, edge_index, batch))
    constant = [name for name, a, b in zip(names[1:], first[1:], other[1:]) if _max_diff(a, b) <= CHANGE_RTOL * _scale(a)]
    flags.append(Flag("stages_depend_on_input", not constant,
                      f"unchanged when the features change: {', '.join(constant)}" if constant
                      else f"{len(names) - 1} stage(s) change with the input"))
    return flags


def raise_red_flags(flags: list[Flag], source: str) -> None:
    """Raise :class:`~benchmark.errors.IntegrityError` naming every failed check, or return."""
    failed = [f for f in flags if not f.passed]
    if failed:
        lines = "; ".join(f"{f.name}: {f.detail}" for f in failed)
        raise IntegrityError(f"{source}: refused by the red-flag checks ({', '.join(CHECKS)}): {lines}")
