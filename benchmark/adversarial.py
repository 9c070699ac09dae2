"""Adversarial training on node features: the perturbation passed to ``train_model(perturb=...)``.

Two threat models, picked from the data (``mode="auto"``) or by name:

* ``flip`` (binary bag-of-words features): a budget of bit flips per node, ``k_v = max(1,
  round(flip_rate * nnz(x_v)))``. Each step takes the loss gradient ``g`` at the current input;
  flipping bit ``(v, j)`` changes the loss by about ``g_vj * (1 - 2 x_vj)``, so the ``k`` flips
  with the largest positive gain are applied (FGSM for one step; with ``steps > 1`` the budget is
  spent in equal installments, PGD-style, each from a fresh gradient). The result stays binary.
* ``linf`` (continuous features): PGD in an L-inf ball of radius ``epsilon * std(X)`` around
  the clean features, step ``2.5 * radius / steps``, projected to the ball and to the data's
  range ``[min(X), max(X)]``; ``steps = 1`` is FGSM.

The attack runs with the model in eval mode (no dropout noise in the gradient) and uses
``torch.autograd.grad`` so no gradient leaks into the parameters' ``.grad``; the caller's
training step turns train mode back on. Deterministic: no random start.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.errors import UserError, unknown_choice
from benchmark.graphs import GraphDataset
from benchmark.models import GraphModel
from benchmark.training import FeaturePerturbation

MODES = ("auto", "flip", "linf")


@dataclass(frozen=True)
class AdversarialConfig:
    """Budget of the training-time attack (recorded in the submission card)."""

    mode: str = "auto"
    flip_rate: float = 0.1  # flip: share of a node's nonzero features that may be flipped (at least 1)
    epsilon: float = 0.1  # linf: radius in units of the features' global standard deviation
    steps: int = 1  # 1 = FGSM; more = PGD

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise unknown_choice("adversarial mode", self.mode, MODES)
        if not 0.0 < self.flip_rate <= 1.0:
            raise UserError(f"flip_rate must be in (0, 1], got {self.flip_rate}")
        if not self.epsilon > 0.0:
            raise UserError(f"epsilon must be positive, got {self.epsilon}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise UserError(f"steps must be a positive integer, got {self.steps!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _loss_gradient(model: GraphModel, x: Tensor, edge_index: Tensor, y: Tensor, index: Tensor) -> Tensor:
    """d loss(train nodes) / d x, shape ``[N, F]``; parameters' ``.grad`` untouched."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x, edge_index)[index], y[index])
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def flip_attack(model: GraphModel, x: Tensor, edge_index: Tensor, y: Tensor, index: Tensor,
                flip_rate: float, steps: int = 1) -> Tensor:
    """Greedy gradient bit flips on binary ``x [N, F]``; returns a binary tensor of the same shape."""
    budget = torch.clamp(torch.round(flip_rate * (x != 0).sum(1).to(torch.float32)), min=1).long()  # [N]
    x_adv = x.detach().clone()
    flipped = torch.zeros_like(x, dtype=torch.bool)
    used = torch.zeros_like(budget)
    columns = torch.arange(x.size(1), device=x.device)
    for step in range(1, steps + 1):
        target = torch.div(budget * step + steps - 1, steps, rounding_mode="floor")  # ceil(budget*step/steps)
        take = target - used  # [N] flips allowed this step
        gain = _loss_gradient(model, x_adv, edge_index, y, index) * (1 - 2 * x_adv)
        gain = gain.masked_fill(flipped, float("-inf"))  # a bit is flipped at most once
        k = int(take.max())
        if k == 0:
            continue
        top_gain, top_idx = gain.topk(k, dim=1)  # [N, k]
        chosen = (columns[:k].unsqueeze(0) < take.unsqueeze(1)) & (top_gain > 0)  # only loss-raising flips
        rows = torch.arange(x.size(0), device=x.device).unsqueeze(1).expand_as(top_idx)
        r, c = rows[chosen], top_idx[chosen]
        x_adv[r, c] = 1 - x_adv[r, c]
        flipped[r, c] = True
        used += chosen.sum(1)
    return x_adv


def linf_attack(model: GraphModel, x: Tensor, edge_index: Tensor, y: Tensor, index: Tensor,
                radius: float, low: float, high: float, steps: int = 1) -> Tensor:
    """PGD (FGSM for ``steps=1``) in the L-inf ball ``|x' - x| <= radius`` clipped to ``[low, high]``."""
    x0 = x.detach()
    step_size = radius if steps == 1 else 2.5 * radius / steps
    x_adv = x0.clone()
    for _ in range(steps):
        x_adv = x_adv + step_size * _loss_gradient(model, x_adv, edge_index, y, index).sign()
        x_adv = torch.minimum(torch.maximum(x_adv, x0 - radius), x0 + radius).clamp(low, high)
    return x_adv.detach()


def make_perturbation(dataset: GraphDataset, config: AdversarialConfig | None = None) -> FeaturePerturbation:
    """The ``perturb`` hook for :func:`benchmark.training.train_model` on ``dataset`` (node tasks)."""
    config = config or AdversarialConfig()
    if dataset.task != "node":
        raise UserError(f"adversarial feature training needs a node-classification dataset; {dataset.name} is a "
                        f"{dataset.task}-classification set")
    x = dataset.data.x
    mode = config.mode
    if mode == "auto":
        mode = "flip" if dataset.binary_features else "linf"
    if mode == "flip" and not dataset.binary_features:
        raise UserError(f"flip attacks need binary features; {dataset.name}'s are continuous (use mode 'linf')")
    radius = config.epsilon * float(x.float().std())
    low, high = float(x.min()), float(x.max())
    if not math.isfinite(radius) or radius <= 0:
        raise UserError(f"{dataset.name}: features have no spread; an L-inf budget relative to their std is zero")

    def perturb(model: GraphModel, x: Tensor, edge_index: Tensor, y: Tensor, index: Tensor) -> Tensor:
        was_training = model.training
        model.eval()
        try:
            if mode == "flip":
                return flip_attack(model, x, edge_index, y, index, config.flip_rate, config.steps)
            return linf_attack(model, x, edge_index, y, index, radius, low, high, config.steps)
        finally:
            model.train(was_training)

    return perturb
