"""Running models on release records: class probabilities ``[K, n_outputs, C]`` per record id.

:func:`infer` is the only place a model meets the frozen records. It leaves the caller's models
as they were (training flag and device), runs in inference mode, and returns float64 CPU
probabilities (softmax of the logits), so the scores downstream never depend on the device or
the model's dtype. Node tasks run each distinct graph once: records decoded from a release share
tensors (every set's original is the base graph, feature metamers keep its edges), and SGC-like
models whose first blocks are parameter-free share that prefix across seeds
(:func:`shared_prefix`). Graph tasks run in batches of :data:`GRAPH_BATCH` graphs.

:func:`models_by_dataset` checks what a caller passed (a model, a list per seed, or a mapping
per dataset) against the datasets' dimensions before any inference.

Why a module of its own: inference is the only part of scoring that touches models and devices;
scoring predictions (``eval_predictions``) never imports it.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from tqdm.auto import tqdm

from benchmark.errors import UserError
from benchmark.records import GraphRecord

GRAPH_BATCH = 256  # graphs per forward pass for graph tasks


def shared_prefix(models: list) -> int:
    """Leading blocks whose output is the same for every model (SGC's parameter-free ``S^K X``):
    ``GraphModel.fixed_prefix`` when all models share one config, else 0."""
    from benchmark.models import GraphModel

    if not models or not all(isinstance(m, GraphModel) for m in models):
        return 0
    if any(m.config != models[0].config for m in models[1:]):
        return 0
    return models[0].fixed_prefix


def node_logits(models: list, prefix: int, x: Tensor, edge_index: Tensor) -> list[Tensor]:
    """Each model's logits on one graph; a shared prefix runs once (same operations, same bits)."""
    if not prefix:
        return [m(x, edge_index) for m in models]
    h = models[0].embed(x, edge_index, layer=prefix)
    return [m.head_from(h, edge_index, layer=prefix) for m in models]


def models_by_dataset(model, datasets: list[str], dims: Mapping) -> dict[str, list]:
    """``{dataset: [GraphModel per seed]}`` from a model, a list of them, or ``{dataset: model or list}``;
    each model's (in_channels, out_channels, task) must be its dataset's (``dims``: DatasetDims)."""
    from benchmark.models import GraphModel

    def as_list(value, where: str) -> list:
        models = [value] if isinstance(value, GraphModel) else list(value)
        if not models or not all(isinstance(m, GraphModel) for m in models):
            raise UserError(f"{where}: expected a GraphModel or a non-empty list of them (one per seed)")
        return models

    if isinstance(model, Mapping):
        missing = sorted(set(datasets) - set(model))
        if missing:
            raise UserError(f"no model for dataset(s) {missing}; this evaluator scores {datasets}")
        by_dataset = {d: as_list(model[d], f"models[{d!r}]") for d in datasets}
    else:
        if len(datasets) > 1:
            raise UserError(f"this release has several datasets ({', '.join(datasets)}): pass "
                            "{dataset: model or [models]} or build Evaluator(..., datasets=[one])")
        by_dataset = {datasets[0]: as_list(model, "model")}
    for dataset, models in by_dataset.items():
        for i, m in enumerate(models):
            c = m.config
            d = dims[dataset]
            expected = (d.num_features, d.num_classes, d.task)
            if (c.in_channels, c.out_channels, c.task) != expected:
                raise UserError(f"model {i} for {dataset} has (in_channels, out_channels, task) = "
                                f"{(c.in_channels, c.out_channels, c.task)}; {dataset} needs {expected}")
    return by_dataset


@torch.inference_mode()
def infer(models: list, records: Mapping[str, GraphRecord], ids: list[str], task: str, device,
          progress: bool = False, desc: str = "inference", set_of: Mapping[str, str] | None = None) -> dict[str, Tensor]:
    """Class probabilities ``[K, n_outputs, C]`` (float64, CPU) of every record in ``ids``.

    ``set_of`` names, per record id, the set the progress bar shows it in.
    """
    from torch_geometric.data import Batch, Data

    set_of = set_of or {}
    # Leave the caller's models as they were: training flag and device.
    modes = [m.training for m in models]
    devices = [next(m.parameters(), torch.empty(0)).device for m in models]
    out: dict[str, list[Tensor]] = {r: [] for r in ids}
    try:
        for m in models:
            m.eval()
            m.to(device)
        if task == "node":
            prefix = shared_prefix(models)
            # Records decoded from a release share tensors: run each distinct graph once.
            done: dict[tuple, list[Tensor]] = {}
            bar = tqdm(ids, desc=desc, unit="graph", disable=not progress, leave=True)
            for record_id in bar:
                if progress and bar.postfix != set_of.get(record_id):
                    bar.set_postfix_str(set_of.get(record_id, ""), refresh=False)
                record = records[record_id]
                key = tuple((t.data_ptr(), tuple(t.shape), t.stride(), t.dtype) for t in (record.x, record.edge_index))
                if key not in done:
                    x, edge_index = record.x.to(device), record.edge_index.to(device)
                    done[key] = [torch.softmax(logits.double(), -1).cpu()
                                 for logits in node_logits(models, prefix, x, edge_index)]
                out[record_id] = done[key]
        else:
            bar = tqdm(range(0, len(ids), GRAPH_BATCH), desc=desc, unit="batch", disable=not progress, leave=True)
            for start in bar:
                chunk = ids[start:start + GRAPH_BATCH]
                if progress:
                    bar.set_postfix_str(set_of.get(chunk[0], ""), refresh=False)
                batch = Batch.from_data_list([Data(x=records[r].x, edge_index=records[r].edge_index,
                                                   num_nodes=records[r].num_nodes) for r in chunk]).to(device)
                for m in models:
                    p = torch.softmax(m(batch.x, batch.edge_index, batch=batch.batch).double(), -1).cpu()
                    for i, record_id in enumerate(chunk):
                        out[record_id].append(p[i:i + 1])
    finally:
        for m, mode, where in zip(models, modes, devices):
            m.train(mode)
            m.to(where)
    return {r: torch.stack(v) for r, v in out.items()}
