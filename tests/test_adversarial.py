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


def test_adversarial_training_is_deterministic_and_more_robust(cora, trained_gcn):
    plain, _ = trained_gcn
    config = default_config("gcn", cora.num_features, cora.num_classes)
    perturb = make_perturbation(cora, AdversarialConfig(flip_rate=0.1))
    first, _ = train_model(cora, config, seed=1, perturb=perturb, epochs=3, patience=3)
    again, _ = train_model(cora, config, seed=1, perturb=perturb, epochs=3, patience=3)
    assert state_dict_bytes(first) == state_dict_bytes(again)
    adv, metrics = train_model(cora, config, seed=1, perturb=perturb, epochs=40, patience=40)
    assert metrics["adversarial"] and metrics["test_acc"] > 0.7
    x, ei, y, test = cora.data.x, cora.data.edge_index, cora.data.y, cora.index("test")

    def attacked_acc(model):
        x_adv = flip_attack(model, x, ei, y, test, flip_rate=0.1)
        with torch.no_grad():
            return float((model(x_adv, ei)[test].argmax(-1) == y[test]).float().mean())

    assert attacked_acc(adv) > attacked_acc(plain) + 0.05


def test_bad_settings_are_refused(cora, mutag):
    with pytest.raises(UserError, match="valid adversarial modes: auto, flip, linf"):
        AdversarialConfig(mode="l2")
    with pytest.raises(UserError, match="steps"):
        AdversarialConfig(steps=0)
    with pytest.raises(UserError, match="node-classification"):
        make_perturbation(mutag)
