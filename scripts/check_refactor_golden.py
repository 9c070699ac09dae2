"""Golden outputs for behaviour-preserving refactors of the zoo and the metamer engine.

``--record`` runs a fixed set of computations with the code as it stands and writes the SHA-256
of every output tensor (and the exact repr of every scalar) to a JSON file; ``--check`` runs the
same computations and lists every entry whose bytes differ. Record before a refactor, check
after: a refactor that claims "no behaviour change" must give an empty difference.

What is covered (all on the CPU, one thread, fixed seeds):

* every shipped checkpoint under ``data_cards/v1/checkpoints`` and every seed of every entry
  under ``submissions/``: strict load, logits on its dataset, state-dict bytes;
* every registered architecture, node task on Cora and graph task on MUTAG, plus variants that
  take the optional paths (residual with a projection, batch/layer norm, other activations,
  three layers): freshly seeded weights, eval logits, a train-mode (dropout) forward, ``embed``
  and ``head_from`` at every layer, and the weights after three epochs of ``train_model``;
* the error messages of a few invalid configs;
* the metamer engine: feature, structure and joint metamers of a node-task (Cora) and a
  graph-task (MUTAG) model, restarts batched and sequential, binary and continuous features,
  binary and weighted edges, the Pearson term, a plateau stop and target-node losses; each
  result's tensors, loss curve and scalars except wall times.

The hashes hold for one machine and library build (float kernels differ across CPUs), so the
golden file is not committed: record it on the machine that checks.

    python scripts/check_refactor_golden.py --record /tmp/golden.json   # before
    python scripts/check_refactor_golden.py --check /tmp/golden.json    # after
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

from benchmark.checkpoints import load_checkpoint, state_dict_bytes
from benchmark.errors import UserError
from benchmark.graphs import load_dataset
from benchmark.metamers import generate_metamers
from benchmark.models import ModelConfig, build_model, default_config, model_names
from benchmark.submissions import validate_submission
from benchmark.training import train_model

ROOT = Path(__file__).resolve().parents[1]

# Configs beyond the registry defaults, so the optional block paths run too.
VARIANTS = {
    "residual-proj": {"residual": True},  # in_channels != hidden: the skip projection
    "batchnorm-elu-3": {"norm": "batch", "activation": "elu", "num_layers": 3},
    "layernorm-gelu-res": {"norm": "layer", "activation": "gelu", "residual": True, "num_layers": 3},
}
BAD_CONFIGS = [
    {"arch": "gat", "in_channels": 5, "out_channels": 2, "hidden_channels": 10, "heads": 4},
    {"arch": "gcn", "in_channels": 5, "out_channels": 2, "num_layers": 1},
    {"arch": "gcn", "in_channels": 5, "out_channels": 2, "num_layers": 0, "task": "graph"},
    {"arch": "nope", "in_channels": 5, "out_channels": 2},
    {"arch": "gcn", "in_channels": 5, "out_channels": 2, "norm": "group"},
]


def digest(value) -> str:
    """SHA-256 of a tensor (dtype, shape and bytes), or of a JSON value's exact text."""
    h = hashlib.sha256()
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    elif isinstance(value, bytes):
        h.update(value)
    else:
        h.update(json.dumps(value, sort_keys=True, default=repr).encode())
    return h.hexdigest()


class Recorder:
    def __init__(self) -> None:
        self.out: dict[str, str] = {}

    def __setitem__(self, key: str, value) -> None:
        if key in self.out:
            raise AssertionError(f"duplicate golden key {key}")
        self.out[key] = digest(value)


def _inputs(dataset):
    if dataset.task == "node":
        g = dataset.data
        return g.x, g.edge_index, None
    from torch_geometric.data import Batch

    b = Batch.from_data_list(list(dataset.graphs[:24]))
    return b.x, b.edge_index, b.batch


def model_outputs(rec: Recorder, key: str, model, dataset, layers: bool = False) -> None:
    x, ei, batch = _inputs(dataset)
    model.eval()
    with torch.no_grad():
        rec[f"{key}/logits"] = model(x, ei, batch=batch)
        ew = torch.linspace(0.0, 1.0, ei.size(1))
        rec[f"{key}/logits_weighted"] = model(x, ei, ew, batch=batch)
        if layers:
            for layer in range(1, model.num_hidden_layers + 1):
                h = model.embed(x, ei, batch=batch, layer=layer)
                rec[f"{key}/embed{layer}"] = h
                try:
                    rec[f"{key}/head_from{layer}"] = model.head_from(h, ei, batch=batch, layer=layer)
                except UserError as err:
                    rec[f"{key}/head_from{layer}"] = str(err)
    rec[f"{key}/num_hidden_layers"] = model.num_hidden_layers
    rec[f"{key}/fixed_prefix"] = model.fixed_prefix


def shipped(rec: Recorder, datasets) -> None:
    for card in sorted((ROOT / "data_cards/v1/checkpoints").glob("*/*/card.json")):
        model, info = load_checkpoint(card.parent)
        key = f"ckpt/{card.parent.parent.name}/{card.parent.name}"
        rec[f"{key}/state"] = state_dict_bytes(model)
        model_outputs(rec, key, model, datasets(info.get("dataset", card.parent.parent.name)))
        print(key, flush=True)
    for folder in sorted(p.parent for p in (ROOT / "submissions").glob("*/submission.json")):
        checked = validate_submission(folder)
        for name, models in sorted(checked.models.items()):
            for i, model in enumerate(models):
                key = f"sub/{folder.name}/{name}/{i}"
                rec[f"{key}/state"] = state_dict_bytes(model)
                model_outputs(rec, key, model, datasets(name))
        print("sub", folder.name, flush=True)


def fresh(rec: Recorder, datasets) -> None:
    for dname in ("Cora", "MUTAG"):
        ds = datasets(dname)
        for arch in model_names():
            for variant, extra in {"default": {}, **VARIANTS}.items():
                key = f"fresh/{dname}/{arch}/{variant}"
                try:
                    cfg = default_config(arch, ds.num_features, ds.num_classes, task=ds.task, **extra)
                    torch.manual_seed(7)
                    model = build_model(cfg)
                except UserError as err:
                    rec[f"{key}/error"] = str(err)
                    continue
                rec[f"{key}/config"] = cfg.to_json()
                rec[f"{key}/state"] = state_dict_bytes(model)
                rec[f"{key}/keys"] = list(model.state_dict())
                model_outputs(rec, key, model, ds, layers=True)
                x, ei, batch = _inputs(ds)
                model.train()
                torch.manual_seed(11)
                rec[f"{key}/train_forward"] = model(x, ei, batch=batch).detach()
                if variant in ("default", "residual-proj"):
                    trained, metrics = train_model(ds, cfg, seed=3, epochs=3, patience=10)
                    rec[f"{key}/trained_state"] = state_dict_bytes(trained)
                    rec[f"{key}/trained_metrics"] = {k: v for k, v in metrics.items() if k != "wall_s"}
            print(key, flush=True)
    for i, bad in enumerate(BAD_CONFIGS):
        try:
            build_model(ModelConfig.from_dict(bad))
            rec[f"bad/{i}"] = "built"
        except UserError as err:
            rec[f"bad/{i}"] = str(err)


def _result(rec: Recorder, key: str, results) -> None:
    for j, r in enumerate(results):
        k = f"{key}/{j}"
        rec[f"{k}/tensors"] = [digest(t) if t is not None else None
                               for t in (r.x, r.edge_index, r.edge_weight, r.start_x, r.start_edge_index)]
        rec[f"{k}/curve"] = [float(v).hex() for v in r.loss_curve]
        rec[f"{k}/scalars"] = [r.kind, r.seed, r.graph_index, r.layer, float(r.rel_loss).hex(), float(r.start_loss).hex(),
                               r.best_iteration, r.iterations, r.status, r.message, r.num_candidates, r.options]


def metamers(rec: Recorder, datasets) -> None:
    cora, mutag = datasets("Cora"), datasets("MUTAG")
    gcn, _ = load_checkpoint(ROOT / "data_cards/v1/checkpoints/Cora/gcn")
    gin, _ = load_checkpoint(ROOT / "data_cards/v1/checkpoints/MUTAG/gin")
    base = {"progress": False, "max_iterations": 6, "tolerance": 0.0}
    for kind in ("feature", "structure", "joint"):
        for batched in (False, True):
            _result(rec, f"meta/Cora/gcn/{kind}/b{int(batched)}",
                    generate_metamers(gcn, cora.data, kind, [0, 1], batch_restarts=batched, **base))
            _result(rec, f"meta/MUTAG/gin/{kind}/b{int(batched)}",
                    generate_metamers(gin, list(mutag.graphs[:5]), kind, [0, 1], graph_indices=[3, 5, 8, 13, 21],
                                      batch_restarts=batched, **base))
        print("metamers", kind, flush=True)
    targets = torch.arange(0, 2708, 37)
    extra = {
        "continuous": {"features": "continuous"},
        "weighted": {"edges": "weighted", "kind": "structure"},
        "weighted-joint": {"edges": "weighted", "kind": "joint", "pearson_weight": 0.5},
        "pearson-margin": {"pearson_weight": 1.0, "margin_weight": 0.1, "refresh_every": 2},
        "patience": {"patience": 1, "max_iterations": 12, "lr": 5.0},
        "target": {"nodes": "target", "loss_nodes": targets, "kind": "joint"},
        "layer1": {"layer": 1, "kind": "joint", "candidate_source": "random"},
        "tolerance": {"tolerance": 0.5},
    }
    for name, opts in extra.items():
        opts = {**base, **opts}
        kind = opts.pop("kind", "feature")
        for batched in (False, True):
            _result(rec, f"meta/Cora/gcn/{name}/b{int(batched)}",
                    generate_metamers(gcn, cora.data, kind, [0, 2], batch_restarts=batched, **opts))
    for arch in ("gat", "gcnii", "sage", "sgformer", "gin"):
        model, _ = load_checkpoint(ROOT / f"data_cards/v1/checkpoints/Cora/{arch}")
        _result(rec, f"meta/Cora/{arch}/joint", generate_metamers(model, cora.data, "joint", [0], **{**base, "max_iterations": 3}))
    print("metamers extra", flush=True)


def run() -> dict[str, str]:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(False)
    cache: dict = {}

    def datasets(name: str):
        if name not in cache:
            cache[name] = load_dataset(name)
        return cache[name]

    rec = Recorder()
    fresh(rec, datasets)
    metamers(rec, datasets)
    shipped(rec, datasets)
    return rec.out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", type=Path, help="write golden hashes to this JSON file")
    mode.add_argument("--check", type=Path, help="compare against golden hashes in this JSON file")
    args = parser.parse_args()
    out = run()
    total = digest(out)
    if args.record:
        args.record.write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")
        print(f"recorded {len(out)} entries to {args.record}; digest of all entries {total}")
        return 0
    golden = json.loads(args.check.read_text())
    missing = sorted(set(golden) - set(out))
    extra = sorted(set(out) - set(golden))
    changed = sorted(k for k in set(golden) & set(out) if golden[k] != out[k])
    for label, keys in (("missing", missing), ("new", extra), ("changed", changed)):
        for k in keys:
            print(f"{label}: {k}")
    print(f"checked {len(out)} entries against {len(golden)}: {len(changed)} changed, {len(missing)} missing, "
          f"{len(extra)} new; digest of all entries {total}")
    return 1 if (missing or extra or changed) else 0


if __name__ == "__main__":
    sys.exit(main())
