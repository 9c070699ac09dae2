"""Adversarial feature training (benchmark.adversarial): budgets, effect on the loss, training hook."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmark.adversarial import AdversarialConfig, flip_attack, linf_attack, make_perturbation
from benchmark.checkpoints import state_dict_bytes
from benchmark.errors import UserError
from benchmark.models import default_config
from benchmark.training import train_model


def _loss(model, x, cora):
    with torch.no_grad():
        idx = cora.index("train")
        return float(F.cross_entropy(model(x, cora.data.edge_index)[idx], cora.data.y[idx]))


def test_flip_attack_keeps_binary_features_within_the_budget_and_raises_the_loss(trained_gcn, cora):
    model, _ = trained_gcn
    x, ei, y, idx = cora.data.x, cora.data.edge_index, cora.data.y, cora.index("train")
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    for steps in (1, 3):
        x_adv = flip_attack(model, x, ei, y, idx, flip_rate=0.1, steps=steps)
        assert ((x_adv == 0) | (x_adv == 1)).all()
        flips = (x_adv != x).sum(1)
        budget = torch.clamp(torch.round(0.1 * x.sum(1)), min=1)
        assert (flips <= budget).all() and flips.sum() > 0.5 * budget.sum()
        assert _loss(model, x_adv, cora) > 1.5 * _loss(model, x, cora)
    # The attack differentiates w.r.t. the input only; the parameters' .grad stays as it was.
    assert all((g is None and p.grad is None) or torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))


def test_linf_attack_stays_in_the_ball_and_range(trained_gcn, cora):
    model, _ = trained_gcn
    x = cora.data.x
    x_adv = linf_attack(model, x, cora.data.edge_index, cora.data.y, cora.index("train"), radius=0.05,
                        low=0.0, high=1.0, steps=4)
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert _loss(model, x_adv, cora) > _loss(model, x, cora)


def test_adversarial_training_is_deterministic_and_changes_the_weights(cora):
    """Same seed, same bytes; the perturbation takes part (weights differ from plain training).

    Robustness itself is measured on the baseline entries (scripts/train_baselines.py), where the
    full recipe runs; a short run here would make that comparison noisy.
    """
    config = default_config("gcn", cora.num_features, cora.num_classes)
    perturb = make_perturbation(cora, AdversarialConfig(flip_rate=0.1))
    first, metrics = train_model(cora, config, seed=1, perturb=perturb, epochs=15, patience=15)
    again, _ = train_model(cora, config, seed=1, perturb=perturb, epochs=15, patience=15)
    plain, _ = train_model(cora, config, seed=1, epochs=15, patience=15)
    assert metrics["adversarial"] and metrics["test_acc"] > 0.7
    assert state_dict_bytes(first) == state_dict_bytes(again)
    assert state_dict_bytes(first) != state_dict_bytes(plain)


def test_bad_settings_are_refused(cora, mutag):
    with pytest.raises(UserError, match="valid adversarial modes: auto, flip, linf"):
        AdversarialConfig(mode="l2")
    with pytest.raises(UserError, match="steps"):
        AdversarialConfig(steps=0)
    with pytest.raises(UserError, match="node-classification"):
        make_perturbation(mutag)
