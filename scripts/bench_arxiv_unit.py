"""Per-step cost of release units on a synthetic ogbn-arxiv-sized graph: the inputs of docs/ray.md's scale estimate.

A random graph of ogbn-arxiv's size (169,343 nodes, 1,166,243 undirected edges, 128 continuous
features, 40 classes), a 2-layer GCN from the registry defaults (untrained: the cost of a step
does not depend on the weights), and for each measured thing a fresh subprocess, so that its peak
resident set is its own:

- ``train``: one full-batch training step (forward, backward, Adam) of the reference model;
- ``continuous``: metamer steps of the continuous-feature kind (release v2's options);
- ``structure``: metamer steps of the structure kind (release v2's options, ``--ratio`` sampled
  non-edges per edge: 1 by default so it fits a shared 24 GB machine; memory grows linearly in
  the candidates, docs/figures/bench_structure_scaling.json).

Prints one line per measurement and writes JSON (``--out``)::

    python scripts/bench_arxiv_unit.py --out docs/figures/bench_arxiv_unit.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

NODES, EDGES, FEATURES, CLASSES = 169_343, 1_166_243, 128, 40


def graph():
    import torch
    from torch_geometric.data import Data

    g = torch.Generator().manual_seed(0)
    n = NODES
    src = torch.randint(n, (int(EDGES * 1.05),), generator=g)
    dst = torch.randint(n, (int(EDGES * 1.05),), generator=g)
    keys = torch.unique(torch.minimum(src, dst) * n + torch.maximum(src, dst))
    keys = keys[keys // n != keys % n][:EDGES]
    u, v = keys // n, keys % n
    edge_index = torch.stack([torch.cat([u, v]), torch.cat([v, u])])
    x = torch.randn(n, FEATURES, generator=g)
    y = torch.randint(CLASSES, (n,), generator=g)
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=n)


def peak_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def one(what: str, iterations: int, ratio: float, threads: int) -> dict:
    import torch

    from benchmark.metamers import generate_metamers
    from benchmark.metamers.options import V2_DEFAULTS
    from benchmark.models import build_model, default_config

    torch.set_num_threads(threads)
    data = graph()
    torch.manual_seed(0)
    model = build_model(default_config("gcn", FEATURES, CLASSES))
    before = peak_mb()
    start = time.perf_counter()
    if what == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(iterations):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(data.x, data.edge_index), data.y).backward()
            opt.step()
        step_s = (time.perf_counter() - start) / iterations
        extra = {}
    else:
        model.eval()
        options = {**V2_DEFAULTS, "max_iterations": iterations, "patience": 0, "tolerance": 0.0}
        if what == "structure":
            options["candidate_ratio"] = ratio
        r = generate_metamers(model, data, what, [0], layer=1, progress=False, **options)[0]
        step_s = r.step_s
        extra = {"candidates": getattr(r, "num_candidates", None)}
    return {"what": what, "nodes": NODES, "edges": EDGES, "features": FEATURES, "threads": threads,
            "iterations": iterations, "step_s": round(step_s, 3), "wall_s": round(time.perf_counter() - start, 2),
            "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak_mb(), 1), **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", nargs="+", default=["train", "continuous", "structure"])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--ratio", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one Ray task's CPU)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.iterations, args.ratio, args.threads)))
        return
    rows = []
    for what in args.what:
        proc = subprocess.run([sys.executable, __file__, "--one", what, "--iterations", str(args.iterations),
                               "--ratio", str(args.ratio), "--threads", str(args.threads)],
                              check=True, capture_output=True, text=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        from benchmark.files import atomic_write_json

        atomic_write_json(args.out, {"rows": rows, "load_avg": os.getloadavg(), "candidate_ratio": args.ratio})


if __name__ == "__main__":
    main()
