"""Structure metamers on synthetic graphs of growing size: peak memory and step time per edge.

Random graphs with ``|E|`` undirected edges (default 10k, 100k, 1M) and ``|V| = |E| / 5``
nodes, 32 binary features, a 2-layer GCN with 16 hidden channels (untrained: the cost does
not depend on the weights), ``candidate_ratio`` 1 by default so the 1M-edge case fits a
shared 2-core / 23 GB machine (memory is per candidate edge either way). Each size runs in a fresh subprocess so its peak RSS is its own. Writes JSON to --out.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch_geometric.data import Data

from benchmark.files import atomic_write_json


def one(edges: int, iterations: int, ratio: float, threads: int) -> dict:
    from benchmark.metamers import generate_metamers
    from benchmark.models import build_model, default_config

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    n = max(edges // 5, 10)
    src = torch.randint(n, (int(edges * 1.1),), generator=g)
    dst = torch.randint(n, (int(edges * 1.1),), generator=g)
    keys = torch.unique(torch.minimum(src, dst) * n + torch.maximum(src, dst))
    keys = keys[keys // n != keys % n][:edges]
    u, v = keys // n, keys % n
    edge_index = torch.stack([torch.cat([u, v]), torch.cat([v, u])])
    x = (torch.rand(n, 32, generator=g) < 0.2).float()
    torch.manual_seed(0)
    model = build_model(default_config("gcn", 32, 4, hidden_channels=16))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    r = generate_metamers(model, Data(x=x, edge_index=edge_index, num_nodes=n), "structure", [0], progress=False,
                          max_iterations=iterations, tolerance=0.0, candidate_ratio=ratio)[0]
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"edges": int(keys.numel()), "nodes": n, "candidates": r.num_candidates, "step_ms": r.step_s * 1e3,
            "wall_s": wall, "peak_rss_mb": peak / 1024, "rss_before_mb": base / 1024,
            "kept_edges": int(r.edge_index.size(1) // 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--ratio", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("docs/figures/bench_structure_scaling.json"))
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.iterations, args.ratio, args.threads)))
        return
    rows = []
    for edges in args.edges:
        proc = subprocess.run([sys.executable, __file__, "--one", str(edges), "--iterations", str(args.iterations),
                               "--ratio", str(args.ratio), "--threads", str(args.threads)],
                              check=True, capture_output=True, text=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["step_us_per_edge"] = row["step_ms"] * 1e3 / row["edges"]
        row["extra_rss_bytes_per_edge"] = (row["peak_rss_mb"] - row["rss_before_mb"]) * 2**20 / row["edges"]
        rows.append(row)
        print(f"|E|={row['edges']:>8d} |V|={row['nodes']:>7d} candidates={row['candidates']:>8d} step {row['step_ms']:9.1f} ms "
              f"({row['step_us_per_edge']:.2f} us/edge)  peak RSS {row['peak_rss_mb']:8.1f} MB "
              f"(+{row['extra_rss_bytes_per_edge']:.0f} B/edge)", flush=True)
    atomic_write_json(args.out, {"rows": rows, "iterations": args.iterations, "candidate_ratio": args.ratio,
                                 "threads": args.threads})


if __name__ == "__main__":
    main()
