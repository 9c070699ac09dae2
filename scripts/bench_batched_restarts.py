"""Batched restarts vs one at a time: metamers per second at R restarts (default 8) on one device.

Both strategies run the same seeds with the same options; the script also checks that each
seed's result is the same either way. The engine's default (``batch_restarts=None``) batches
on CUDA only; this script measures why. Writes JSON to --out.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmark.files import atomic_write_json
from benchmark.graphs import load_dataset
from benchmark.metamers import generate_metamers
from benchmark.models import default_config
from benchmark.training import train_model
from benchmark.versions import hardware


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gcn")
    parser.add_argument("--dataset", default="Cora")
    parser.add_argument("--kind", default="feature")
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/figures/bench_batched_restarts.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
    model, _ = train_model(dataset, default_config(args.model, dataset.num_features, dataset.num_classes), seed=0, epochs=30)
    model = model.to(args.device)
    seeds = list(range(args.restarts))
    kw = dict(progress=False, max_iterations=args.iterations, tolerance=0.0, device=args.device)
    timings = {}
    results = {}
    for mode in ("sequential", "batched", "sequential", "batched"):  # interleaved: load hits both alike
        start = time.perf_counter()
        out = generate_metamers(model, dataset.data, args.kind, seeds, batch_restarts=mode == "batched", **kw)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        timings.setdefault(mode, []).append(time.perf_counter() - start)
        results[mode] = out
    seq, bat = min(timings["sequential"]), min(timings["batched"])
    same = all(torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
               for a, b in zip(results["sequential"], results["batched"]))
    row = {"model": args.model, "dataset": args.dataset, "kind": args.kind, "restarts": args.restarts,
           "iterations": args.iterations, "device": args.device, "threads": args.threads,
           "sequential_s": round(seq, 3), "batched_s": round(bat, 3),
           "throughput_ratio_batched_over_sequential": round(seq / bat, 3), "same_results": same,
           "timings": timings, "hardware": hardware()}
    print(f"{args.restarts} restarts x {args.iterations} steps ({args.kind}, {args.model}, {args.device}): "
          f"sequential {seq:.1f} s, batched {bat:.1f} s, throughput ratio {seq / bat:.2f}x, same results: {same}")
    atomic_write_json(args.out, row)


if __name__ == "__main__":
    main()
