"""Where does a zoo model's accuracy gap to its paper come from? Train it under recipe variants.

Trains one architecture on one dataset for several seeds with the zoo recipe and with the
variants given, and prints mean +- std test accuracy per variant. A variant is a set of
``KEY=VALUE`` changes: ``train.lr=0.005``, ``model.heads=8``, or ``normalize_features=1``
(row-normalised features, as in the GCN/GAT/SGC papers' preprocessing; the benchmark keeps raw
0/1 bag-of-words because feature metamers optimise binary rows).

    python scripts/zoo_recipe_check.py --dataset CiteSeer --model gat \\
        --variant normalize_features=1 --variant train.weight_decay=0.001
"""
from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace

import torch

from benchmark.graphs import GraphDataset, load_dataset
from benchmark.models import default_config
from benchmark.training import train_model


def row_normalised(dataset: GraphDataset) -> GraphDataset:
    graphs = []
    for graph in dataset.graphs:
        graph = graph.clone()
        graph.x = graph.x / graph.x.sum(1, keepdim=True).clamp(min=1.0)
        graphs.append(graph)
    return replace(dataset, graphs=graphs)


def parse_variant(text: str) -> dict:
    changes = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"variant item {item!r} is not KEY=VALUE")
        changes[key.strip()] = json.loads(value)
    return changes


def run(dataset: GraphDataset, arch: str, seeds: list[int], changes: dict) -> list[float]:
    if changes.get("normalize_features"):
        dataset = row_normalised(dataset)
    model_kw = {k[6:]: v for k, v in changes.items() if k.startswith("model.")}
    train_kw = {k[6:]: v for k, v in changes.items() if k.startswith("train.")}
    config = default_config(arch, dataset.num_features, dataset.num_classes, task=dataset.task, **model_kw)
    return [100 * train_model(dataset, config, seed=s, **train_kw)[1]["test_acc"] for s in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variant", action="append", default=[], help="KEY=VALUE[,KEY=VALUE...]")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants-only", action="store_true", help="skip the zoo recipe (e.g. it is in docs/zoo_runs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
    for text in ([] if args.variants_only else ["zoo recipe"]) + args.variant:
        changes = {} if text == "zoo recipe" else parse_variant(text)
        accs = run(dataset, args.model, args.seeds, changes)
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"{args.model} {args.dataset} [{text}]: {statistics.mean(accs):.1f} +- {std:.1f} "
              f"({', '.join(f'{a:.1f}' for a in accs)})", flush=True)


if __name__ == "__main__":
    main()
