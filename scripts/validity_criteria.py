"""Which validity criterion separates the controls? (issue 11.1, docs/validity_v2.md)

For reference models and stages, generate metamers with the v2 engine options, build the near
twin and the matched far twin, and print per criterion the valid rate of each role on the test
nodes (node tasks) or test graphs. A usable criterion has far <= 5% and near >= 95%.

    python scripts/validity_criteria.py --dataset Cora --release data_cards/v1 \\
        --models gcn gcnii sgformer --kinds feature --steps 300 --out docs/validity_criteria.json
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch_geometric.data import Batch

from benchmark.checkpoints import load_checkpoint
from benchmark.graphs import load_dataset
from benchmark.metamers import generate_metamers
from benchmark.metamers.twins import matched_far_twin, near_twin
from benchmark.metamers.validity import CRITERIA, StageCriterion


@torch.no_grad()
def node_outputs(model, x, ei, stage):
    return model.stage(x, ei, stage=stage), model(x, ei).argmax(-1)


@torch.no_grad()
def graph_outputs(model, graphs, stage):
    b = Batch.from_data_list(graphs)
    if stage == model.logits_stage:
        h = model(b.x, b.edge_index, batch=b.batch)
    else:
        h = model.head.pool(model.stage(b.x, b.edge_index, batch=b.batch, stage=stage), b.batch)
    return h, model(b.x, b.edge_index, batch=b.batch).argmax(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="Cora")
    ap.add_argument("--release", default="data_cards/v1")
    ap.add_argument("--models", nargs="+", default=["gcn"])
    ap.add_argument("--kinds", nargs="+", default=["feature"])
    ap.add_argument("--stages", nargs="+", default=["first", "logits"], help="first, last (hidden) or logits")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    rows = []
    for arch in args.models:
        model = load_checkpoint(f"{args.release}/checkpoints/{args.dataset}/{arch}")[0].eval()
        for kind in args.kinds:
            for stage_name in args.stages:
                stage = {"first": 1, "last": model.num_hidden_layers, "logits": model.logits_stage}[stage_name]
                t0 = time.perf_counter()
                opts = dict(max_iterations=args.steps, patience=50, pearson_weight=1.0, edge_budget=0.25,
                            candidate_source="mixed", continuous_levels=256 if kind == "continuous" else 0)
                if ds.task == "node":
                    d = ds.data
                    test = ds.index("test")
                    r = generate_metamers(model, d, kind, [args.seed], stage, progress=False, **opts)[0]
                    h, pred = node_outputs(model, d.x, d.edge_index, stage)
                    variants = {"metamer": (r.x, r.edge_index), "near": near_twin(d.x, d.edge_index, kind, args.seed),
                                "far": matched_far_twin(d.x, d.edge_index, r.x, r.edge_index, kind, args.seed,
                                                        levels=opts["continuous_levels"])}
                    outs = {role: node_outputs(model, x2, e2, stage) for role, (x2, e2) in variants.items()}
                    population, units, hu = h, test, h[test]
                    out_units = {role: (o[0][test], o[1][test]) for role, o in outs.items()}
                    pred_u = pred[test]
                    best_it = r.best_iteration
                else:
                    test = ds.index("test").tolist()
                    graphs = [ds.graphs[i] for i in test]
                    res = generate_metamers(model, graphs, kind, [args.seed], stage, graph_indices=test,
                                            progress=False, **opts)
                    from torch_geometric.data import Data
                    h_all, _ = graph_outputs(model, list(ds.graphs), stage)
                    hu, pred_u = graph_outputs(model, graphs, stage)
                    mk = lambda x, e, g: Data(x=x, edge_index=e, num_nodes=g.num_nodes)  # noqa: E731
                    variants = {
                        "metamer": [mk(r.x, r.edge_index, g) for r, g in zip(res, graphs)],
                        "near": [mk(*near_twin(g.x, g.edge_index, kind, args.seed * 100_003 + i, count=1), g)
                                 for g, i in zip(graphs, test)],
                        "far": [mk(*matched_far_twin(g.x, g.edge_index, r.x, r.edge_index, kind, args.seed * 100_003 + i), g)
                                for g, r, i in zip(graphs, res, test)]}
                    out_units = {role: graph_outputs(model, gs, stage) for role, gs in variants.items()}
                    population, units = h_all, torch.tensor(test)
                    best_it = max(r.best_iteration for r in res)
                row = {"dataset": args.dataset, "model": arch, "kind": kind, "stage": stage_name, "layer": stage,
                       "best_iteration": best_it, "wall_s": round(time.perf_counter() - t0, 1)}
                for crit in CRITERIA:
                    c = StageCriterion.fit(crit, population)
                    for role, (h2, p2) in out_units.items():
                        v = c.check(hu, h2, pred_u, p2, h_population=population)
                        row[f"{crit}/{role}"] = round(v.rate(), 4)
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
