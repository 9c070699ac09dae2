"""Training reference and baseline models: seeded, early-stopped on validation accuracy.

Node tasks train full-batch on the split's train nodes; graph tasks train on mini-batches of
the train graphs. The best validation epoch's weights are kept (ties go to the lower
validation loss), and the returned metrics are measured with those weights.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from benchmark.devices import check_device
from benchmark.errors import UserError
from benchmark.graphs import GraphDataset
from benchmark.models import MODEL_REGISTRY, GraphModel, ModelConfig, build_model, count_parameters

# (model, x, edge_index, y, train_index) -> perturbed x; used for adversarial training.
FeaturePerturbation = Callable[[GraphModel, Tensor, Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; registry defaults per architecture, overridable per call."""

    lr: float = 0.01
    weight_decay: float = 5e-4
    epochs: int = 500
    patience: int = 100
    batch_size: int = 32  # graph tasks only

    @classmethod
    def for_arch(cls, arch: str, **overrides) -> TrainConfig:
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise UserError(f"unknown training option(s) {unknown}; valid options: {sorted(valid)}")
        return replace(cls(**MODEL_REGISTRY[arch].train), **overrides)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.no_grad()
def accuracy(model: GraphModel, dataset: GraphDataset, part: str) -> float:
    """Accuracy of ``model`` (in eval mode) on split ``part`` ("train", "val" or "test")."""
    return _evaluate(model, dataset, part)[0]


class _NodeInputs:
    """The node task's forward pass; the model's fixed prefix (SGC's ``S^K X``) computed once.

    The cached path runs the same operations on the same values, so it changes no bits; it is
    off when the input features change between epochs (adversarial training).
    """

    def __init__(self, model: GraphModel, dataset: GraphDataset, cache: bool) -> None:
        self.data = dataset.data
        self.layer = model.fixed_prefix if cache else 0
        self.h = None
        if self.layer:
            with torch.no_grad():
                self.h = model.embed(self.data.x, self.data.edge_index, layer=self.layer)

    def logits(self, model: GraphModel) -> Tensor:
        if self.h is None:
            return model(self.data.x, self.data.edge_index)
        return model.head_from(self.h, self.data.edge_index, layer=self.layer)


@torch.no_grad()
def _evaluate(model: GraphModel, dataset: GraphDataset, part: str,
              inputs: _NodeInputs | None = None) -> tuple[float, float]:
    model.eval()
    index = dataset.index(part)
    if dataset.task == "node":
        data = dataset.data
        logits = (inputs.logits(model) if inputs is not None else model(data.x, data.edge_index))[index]
        y = data.y[index]
    else:
        from torch_geometric.loader import DataLoader

        loader = DataLoader([dataset.graphs[i] for i in index.tolist()], batch_size=256)
        outs, ys = [], []
        for batch in loader:
            outs.append(model(batch.x, batch.edge_index, batch=batch.batch))
            ys.append(batch.y)
        logits, y = torch.cat(outs), torch.cat(ys)
    loss = F.cross_entropy(logits, y).item()
    return float((logits.argmax(-1) == y).float().mean()), loss


def _node_epoch(model: GraphModel, dataset: GraphDataset, optimizer: torch.optim.Optimizer,
                perturb: FeaturePerturbation | None, inputs: _NodeInputs) -> float:
    data, train = dataset.data, dataset.index("train")
    model.train()
    optimizer.zero_grad()
    loss = F.cross_entropy(inputs.logits(model)[train], data.y[train])
    if perturb is not None:  # mix clean and adversarial loss, as in standard adversarial training
        x_adv = perturb(model, data.x, data.edge_index, data.y, train)
        model.train()
        adv_loss = F.cross_entropy(model(x_adv, data.edge_index)[train], data.y[train])
        loss = 0.5 * (loss + adv_loss)
    loss.backward()
    optimizer.step()
    return loss.item()


def _graph_epoch(model: GraphModel, loader, optimizer: torch.optim.Optimizer) -> float:
    model.train()
    total, count = 0.0, 0
    for batch in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(batch.x, batch.edge_index, batch=batch.batch), batch.y)
        loss.backward()
        optimizer.step()
        total += loss.item() * batch.num_graphs
        count += batch.num_graphs
    return total / max(count, 1)


def train_model(dataset: GraphDataset, config: ModelConfig, seed: int = 0, progress: bool = False,
                perturb: FeaturePerturbation | None = None, device: str = "cpu",
                **overrides) -> tuple[GraphModel, dict]:
    """Train ``config`` on ``dataset`` from seed ``seed``; returns ``(model in eval mode, metrics)``.

    ``overrides`` are :class:`TrainConfig` fields (lr, weight_decay, epochs, patience, batch_size).
    ``perturb`` enables adversarial training on node features (node tasks).
    ``device``: where to train ("cpu", "cuda", ...). Byte-identical weights for a seed on one CPU
    kernel family (another CPU's kernels round differently: within ``benchmark.reproduce.WEIGHT_ATOL``
    for the shipped references); CUDA's atomic scatter makes GPU runs reproducible only up to
    float rounding. The returned model is always on the CPU.
    Metrics: train/val/test accuracy, best epoch, epochs run, wall_s, num_params, the train config,
    the device.
    """
    if config.task != dataset.task:
        raise UserError(f"config.task is {config.task!r} but {dataset.name} is a {dataset.task}-classification set")
    if (config.in_channels, config.out_channels) != (dataset.num_features, dataset.num_classes):
        raise UserError(f"config expects {config.in_channels} features / {config.out_channels} classes; "
                        f"{dataset.name} has {dataset.num_features} / {dataset.num_classes}")
    if perturb is not None and dataset.task != "node":
        raise UserError("adversarial feature training is implemented for node tasks only")
    train_cfg = TrainConfig.for_arch(config.arch, **overrides)
    check_device(device)
    host_dataset, dataset = dataset, dataset.to(device)
    seed_everything(seed)
    model = build_model(config).to(device)  # initialised on the CPU first: the same start on every device
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    loader = inputs = None
    if dataset.task == "node":
        inputs = _NodeInputs(model, dataset, cache=perturb is None)
    else:
        from torch_geometric.loader import DataLoader

        generator = torch.Generator().manual_seed(seed)  # shuffling stays on the CPU generator
        train_graphs = [dataset.graphs[i] for i in dataset.index("train").tolist()]
        loader = DataLoader(train_graphs, batch_size=train_cfg.batch_size, shuffle=True, generator=generator)
    best = (-1.0, float("inf"))
    best_state, best_epoch, since_best = None, 0, 0
    start = time.perf_counter()
    bar = tqdm(range(1, train_cfg.epochs + 1), desc=f"train {config.arch}/{dataset.name}/s{seed}",
               disable=not progress, leave=False, mininterval=1.0)
    epoch = 0
    for epoch in bar:
        loss = (_node_epoch(model, dataset, optimizer, perturb, inputs) if inputs is not None
                else _graph_epoch(model, loader, optimizer))
        if not np.isfinite(loss):
            raise UserError(f"training {config.arch} on {dataset.name} diverged at epoch {epoch} (loss {loss}); "
                            "lower the learning rate")
        val_acc, val_loss = _evaluate(model, dataset, "val", inputs)
        if (val_acc, -val_loss) > (best[0], -best[1]):
            best, best_epoch, since_best = (val_acc, val_loss), epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            since_best += 1
        bar.set_postfix(loss=f"{loss:.3f}", val=f"{val_acc:.3f}")
        if since_best >= train_cfg.patience:
            break
    wall = time.perf_counter() - start
    assert best_state is not None
    model = model.cpu()
    model.load_state_dict(best_state)
    model.eval()
    dataset = host_dataset
    metrics = {
        "train_acc": accuracy(model, dataset, "train"),
        "val_acc": accuracy(model, dataset, "val"),
        "test_acc": accuracy(model, dataset, "test"),
        "best_epoch": best_epoch,
        "epochs": epoch,
        "wall_s": round(wall, 3),
        "num_params": count_parameters(model),
        "train_config": {f.name: getattr(train_cfg, f.name) for f in fields(train_cfg)},
        "adversarial": perturb is not None,
        "device": torch.device(device).type,
    }
    return model, metrics
