"""At which quantile of the centred random-pair null do near twins pass? (issue 11.1, docs/validity_v2.md)

For each reference checkpoint and stage (hidden layer 1 and the logits), the near twin (1% of the
feature ones moved within their rows) is compared with the original on the test nodes: the share
whose centred Pearson r beats the null's 0.999, 0.99 and 0.95 quantiles. No optimisation runs, so
this takes seconds; far twins and metamers are measured on every built set (the release card).

    python scripts/validity_quantile.py --release data_cards/v1 --dataset Cora \\
        --models gcn gcnii gin sage gat sgformer --out docs/validity_v2/quantile_cora.json
"""
from __future__ import annotations

import argparse
import json

import torch

from benchmark.checkpoints import load_checkpoint
from benchmark.graphs import load_dataset
from benchmark.metamers.twins import near_twin
from benchmark.metamers.validity import null_threshold, pearson_rows

QUANTILES = (0.999, 0.99, 0.95)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--release", default="data_cards/v1")
    ap.add_argument("--dataset", default="Cora")
    ap.add_argument("--models", nargs="+", default=["gcn", "gcnii", "gin", "sage", "gat", "sgformer"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    d, test = ds.data, ds.index("test")
    rows = []
    for arch in args.models:
        model = load_checkpoint(f"{args.release}/checkpoints/{args.dataset}/{arch}")[0].eval()
        with torch.no_grad():
            for stage in (1, model.logits_stage):
                h = model.stage(d.x, d.edge_index, stage=stage)
                centre = h.mean(0, keepdim=True)
                thresholds = {q: null_threshold(h - centre, q, distinct_rows=True) for q in QUANTILES}
                rates = {q: [] for q in QUANTILES}
                for seed in args.seeds:
                    x2, e2 = near_twin(d.x, d.edge_index, "feature", seed)
                    r = pearson_rows(h[test] - centre, model.stage(x2, e2, stage=stage)[test] - centre)
                    for q, t in thresholds.items():
                        rates[q].append(float((r > t).float().mean()))
                row = {"model": arch, "stage": "logits" if stage == model.logits_stage else f"L{stage}",
                       **{f"threshold@{q}": round(t, 4) for q, t in thresholds.items()},
                       **{f"near_pass@{q}": round(sum(v) / len(v), 4) for q, v in rates.items()}}
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
