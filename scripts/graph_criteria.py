"""Which validity criterion and which matching target work on graph-classification sets?

Release v2's first NCI1 sets (docs/validity_v2/nci1_first_sets.json) failed: the engine matched
every node's row while validity tests the graph's readout, near twins (one atom) were 0.00-0.77
valid, and on the logits of a 2-class task Pearson r is +-1 for every pair, so its null is 1.0.
This script builds sets of one reference checkpoint at every stage with the engine matching node
rows (``graph_match=nodes``) or the readout (``readout``) and scores the *same* metamers, near
and far twins under each criterion fitted on the whole dataset's population:

- ``centred``: Pearson r of activations centred on the population mean > its q-th quantile
  over random distinct pairs (release v2's node-task criterion, q = 0.99);
- ``distance``: L2 distance to the original < the (1 - q)-th quantile over random distinct pairs;

each at q in ``--quantiles`` (the metamers are optimised once; only the test changes).

A criterion is usable where metamers can be valid, near twins are >= 0.95 valid and far twins
<= 0.05 (DESIGN 3). Prints one row per (kind, stage, match, criterion) and writes JSON lines.

    python scripts/graph_criteria.py --dataset NCI1 --checkpoint docs/validity_v2/checkpoints/NCI1/gin-s1000 \
        --out docs/validity_v2/graph_criteria_nci1.jsonl
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from torch_geometric.data import Data

from benchmark.checkpoints import load_checkpoint
from benchmark.graphs import load_dataset
from benchmark.metamers import make_frozen_set
from benchmark.metamers.options import V2_DEFAULTS
from benchmark.metamers.validity import StageCriterion, graph_stage_outputs

CRITERIA = ("centred", "distance")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="NCI1")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--kinds", nargs="+", default=["feature", "structure"])
    ap.add_argument("--matches", nargs="+", default=["nodes", "readout"])
    ap.add_argument("--quantiles", type=float, nargs="+", default=[0.9, 0.95, 0.99])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    dataset = load_dataset(args.dataset)
    model = load_checkpoint(args.checkpoint)[0].eval()
    population_graphs = [Data(x=g.x.float(), edge_index=g.edge_index, num_nodes=g.num_nodes) for g in dataset.graphs]
    rows = []
    for kind in args.kinds:
        for stage in range(1, model.logits_stage + 1):
            population, _ = graph_stage_outputs(model, population_graphs, stage)
            fitted = {(c, q): StageCriterion.fit(c, population, q) for c in CRITERIA for q in args.quantiles}
            # At the logits the readout is the stage itself: both matches are the same run.
            for match in (args.matches if stage < model.logits_stage else args.matches[-1:]):
                t0 = time.perf_counter()
                fs = make_frozen_set(dataset, model, "probe", kind, [0], layer=stage, progress=False, protocol="v2",
                                     validity="distance", validity_quantile=max(args.quantiles),
                                     **{**V2_DEFAULTS, "graph_match": match})
                wall = time.perf_counter() - t0
                originals = {r.graph_index: r.to_data() for r in fs.originals}
                by_role: dict[str, list] = {}
                for r in fs.variants:
                    by_role.setdefault(r.role, []).append(r)
                h, pred = graph_stage_outputs(model, [originals[r.graph_index] for r in by_role["metamer"]], stage)
                for (criterion, quantile), crit in fitted.items():
                    row = {"dataset": args.dataset, "checkpoint": args.checkpoint, "kind": kind, "stage": stage,
                           "logits_stage": model.logits_stage, "match": match, "criterion": criterion,
                           "quantile": quantile, "threshold": round(crit.threshold, 6), "wall_s": round(wall, 1),
                           "best_iteration": round(sum(r.stats.get("best_iteration", 0) for r in by_role["metamer"])
                                                   / len(by_role["metamer"]), 1)}
                    for role, records in by_role.items():
                        assert [r.graph_index for r in records] == [r.graph_index for r in by_role["metamer"]]
                        h2, pred2 = graph_stage_outputs(model, [r.to_data() for r in records], stage)
                        check = crit.check(h, h2, pred, pred2)
                        row[f"{role}_valid"] = round(check.rate(), 4)
                        row[f"{role}_same_prediction"] = round(float(check.same_prediction.float().mean()), 4)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
