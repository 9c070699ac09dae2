"""Feature-metamer step time / a bare forward+backward of the same model on the same graph.

For each architecture (default GCN, GAT, GraphSAGE, GIN) on Cora, in one process and
interleaved so machine load hits both sides alike:
- bare: ``h = model.embed(x, edge_index, layer)`` with ``x`` requiring grad, the relative
  activation loss, ``backward()`` (the least any gradient-based metamer step can do);
- metamer: one step of the binary feature-metamer optimiser (top-k + straight-through,
  forward, backward, Adam), the median over a short run.
Ratios < 1 are possible: the metamer's forward sees the 0/1 matrix as sparse rows.
Writes JSON to --out (default docs/figures/bench_feature_step.json) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from benchmark.files import atomic_write_json
from benchmark.graphs import load_dataset
from benchmark.metamers import generate_metamers
from benchmark.models import default_config
from benchmark.training import train_model
from benchmark.versions import hardware, library_versions


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_step_times(model, data, layer: int, steps: int) -> list[float]:
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    with torch.no_grad():
        ref = model.embed(data.x, data.edge_index, layer=layer)
        den = (ref**2).sum()
    x = data.x.clone().requires_grad_(True)
    times = []
    for _ in range(steps + 2):
        _sync(x.device)
        t = time.perf_counter()
        x.grad = None
        h = model.embed(x, data.edge_index, layer=layer)
        (((h - ref) ** 2).sum() / den).backward()
        _sync(x.device)
        times.append(time.perf_counter() - t)
    return times[2:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gcn", "gat", "sage", "gin"])
    parser.add_argument("--dataset", default="Cora")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the engine's per-step loss check syncs)")
    parser.add_argument("--out", type=Path, default=Path("docs/figures/bench_feature_step.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
    data = dataset.data.to(args.device)
    rows = []
    for arch in args.models:
        model, _ = train_model(dataset, default_config(arch, dataset.num_features, dataset.num_classes), seed=0, epochs=30)
        model = model.to(args.device)
        layer = model.default_layer
        bare, meta = [], []
        for _ in range(args.rounds):
            bare.append(statistics.median(bare_step_times(model, data, layer, args.steps)))
            result = generate_metamers(model, data, "feature", [0], layer, progress=False, max_iterations=args.steps + 2,
                                       tolerance=0.0)[0]
            meta.append(result.step_s)
        b, m = min(bare), min(meta)
        rows.append({"model": arch, "layer": layer, "bare_ms": round(b * 1e3, 2), "metamer_step_ms": round(m * 1e3, 2),
                     "ratio": round(m / b, 3), "bare_rounds_ms": [round(v * 1e3, 2) for v in bare],
                     "metamer_rounds_ms": [round(v * 1e3, 2) for v in meta]})
        print(f"{arch:6s} L{layer}  bare {b * 1e3:8.2f} ms   metamer step {m * 1e3:8.2f} ms   ratio {m / b:5.2f}x", flush=True)
    atomic_write_json(args.out, {"dataset": args.dataset, "threads": args.threads, "device": args.device, "rows": rows,
                                 "hardware": hardware(), "library_versions": library_versions()})


if __name__ == "__main__":
    main()
