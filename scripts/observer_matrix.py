"""Do a kind and a stage separate observers? Cross-reference recognition of built v2 sets (issue 11.6).

For every finished node-task set of a (possibly partial) release build, each reference model of the
same dataset observes the set's metamers and far twins: its accuracy on the metamer, on the far twin
and on the original, on the same units (test nodes whose metamer is valid), and
``transfer = (metamer - far) / (clean - far)``. Observers other than the generator itself are the
cross-model test; a kind/stage *separates observers* when their transfer spreads wider than its
bootstrap noise (the printed 95% interval of the spread over units).

    python scripts/observer_matrix.py --release data_cards/v2 --dataset Cora --out docs/v2_observers.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmark.checkpoints import load_checkpoint
from benchmark.release.shards import read_records


def _acc(model, x, edge_index, y, units):
    with torch.no_grad():
        return (model(x, edge_index).argmax(-1)[units] == y[units]).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--release", default="data_cards/v2")
    ap.add_argument("--dataset", default="Cora")
    ap.add_argument("--bootstrap", type=int, default=500)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = Path(args.release)
    state = json.loads((root / ".build" / "state.json").read_text())
    observers = {p.name: load_checkpoint(p)[0].eval() for p in sorted((root / "checkpoints" / args.dataset).iterdir())
                 if (p / "model.safetensors").is_file()}
    bases = {r.id: r for r in read_records(root / "data" / "bases" / f"{args.dataset}.parquet")}
    rows = []
    for key, step in sorted(state["steps"].items()):
        if not key.startswith(f"set/{args.dataset}/") or step.get("task") != "node":
            continue
        _, _, generator, kind, layer = key.split("/")
        shard = root / "data" / args.dataset / f"{generator}-{kind}-{layer}.parquet"
        records = read_records(shard, references=bases)
        original = next(r for r in records if r.role == "original")
        meta = next(r for r in records if r.role == "metamer")
        far = next(r for r in records if r.role == "far")
        units = torch.nonzero(meta.valid & original.target).view(-1)
        g = torch.Generator().manual_seed(0)
        boots = torch.randint(units.numel(), (args.bootstrap, units.numel()), generator=g)
        per_obs = {}
        for name, model in observers.items():
            clean = _acc(model, original.x, original.edge_index, original.y, units)
            m = _acc(model, meta.x, meta.edge_index, original.y, units)
            f = _acc(model, far.x, far.edge_index, original.y, units)
            per_obs[name] = (clean, m, f)
        others = [n for n in observers if n != generator]

        def transfer(c, m, f):
            return (m.mean() - f.mean()) / (c.mean() - f.mean()).clamp(min=1e-6)

        point = {n: float(transfer(*per_obs[n])) for n in observers}
        spreads = []
        for b in boots:
            t = [float(transfer(*(v[b] for v in per_obs[n]))) for n in others]
            spreads.append(max(t) - min(t) if t else 0.0)
        spreads = torch.tensor(spreads)
        row = {"set": key[4:], "generator": generator, "kind": kind, "stage": step.get("stage"), "layer": layer,
               "units": int(units.numel()), "transfer": {n: round(v, 3) for n, v in point.items()},
               "metamer_acc": {n: round(float(per_obs[n][1].mean()), 3) for n in observers},
               "far_acc": {n: round(float(per_obs[n][2].mean()), 3) for n in observers},
               "clean_acc": {n: round(float(per_obs[n][0].mean()), 3) for n in observers},
               "spread_others": round(max(point[n] for n in others) - min(point[n] for n in others), 3) if others else None,
               "spread_ci95": [round(float(torch.quantile(spreads, 0.025)), 3), round(float(torch.quantile(spreads, 0.975)), 3)]}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("set", "units", "spread_others", "spread_ci95")}), json.dumps(row["transfer"]),
              flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
