"""Scale estimate: a v2-style release of ogbn-arxiv-sized graphs on a Ray cluster, by simulation.

Not a measurement of a cluster: a model of one, fed only with figures measured on this machine
(issue 15, docs/ray.md, "Scale estimate"):

- per-step time and peak memory of one unit on a synthetic ogbn-arxiv-sized graph, one torch
  thread (``docs/figures/bench_arxiv_unit.json``, ``scripts/bench_arxiv_unit.py``), and of one
  full-batch training step of its reference model;
- how many steps a v2 unit takes (``iterations`` in each set's summary) and how many epochs a v2
  reference trains (``metrics.epochs`` of its card), from the committed partial v2 build
  (``data_cards/v2``);
- Ray's overhead per unit (``docs/figures/bench_ray.json``, ``scripts/bench_ray.py``);
- the relative step cost of the architectures (docs/metamer_engine.md, feature step, 2 threads:
  gcn 26.2, gat 31.7, sage 40.6, gin 36.0 ms) and, for the 4-layer residual GCN, 2x the GCN.

The unit list is release v2's recipe applied to one arxiv-sized graph: references gcn, sage, gin,
gat and gcn4r, two reference seeds (one for the continuous kind, as v2), the continuous and
structure kinds (arxiv's features are dense: v2's binary feature kind does not apply), stages
early/late/logits. Units are placed in build order on the first node with a free CPU and enough
memory, after their reference's training, as ``--executor ray`` does; a node runs as many units
as its CPUs and the memory requests (``unit_memory``, what Ray packs by) allow. Prints the unit list, memory per unit and the wall time for each
cluster shape at the median and the slowest measured step counts; ``--out`` writes JSON.

    python scripts/simulate_ray_release.py --out docs/figures/simulate_ray_release.json
"""
from __future__ import annotations

import argparse
import heapq
import json
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCH_COST = {"gcn": 1.0, "gat": 31.7 / 26.2, "sage": 40.6 / 26.2, "gin": 36.0 / 26.2, "gcn4r": 2.0}
STAGES = {"gcn": 2, "gat": 2, "sage": 2, "gin": 2, "gcn4r": 3}  # hidden (+ late) + logits
SEEDS = {"continuous": [1000], "structure": [1000, 1001]}
V2_CANDIDATE_RATIO = 5.0  # MetamerOptions default; release v2 does not change it


def measured_v2() -> dict:
    state = json.loads((REPO / "data_cards" / "v2" / ".build" / "state.json").read_text())["steps"]
    iterations: dict[str, list[int]] = {}
    for key, step in state.items():
        if key.startswith("set/"):
            kind = key.split("/")[3]
            for summary in step.get("summary", {}).values():
                iterations.setdefault(kind, []).append(int(summary["iterations"]))
    epochs = [json.loads(card.read_text())["metrics"]["epochs"]
              for card in (REPO / "data_cards" / "v2" / "checkpoints").glob("*/*/card.json")]
    return {"iterations": iterations, "epochs": epochs}


def request_gb(kind: str, row: dict) -> float:
    """What ``--executor ray`` asks Ray for (benchmark.executors.ray_build.unit_memory): Ray packs by it."""
    from benchmark.executors.ray_build import unit_memory

    kind = "feature" if kind == "train" else kind
    return unit_memory(kind, row["nodes"], row["features"], 2 * row["edges"], V2_CANDIDATE_RATIO) / 2**30


def units(figures: dict, v2: dict, which: str) -> list[dict]:
    rows = {r["what"]: r for r in figures["rows"]}
    pick = statistics.median if which == "median" else max
    out = []
    for arch in ("gcn", "sage", "gin", "gat", "gcn4r"):
        for seed in (1000, 1001):
            train = rows["train"]
            out.append({"name": f"checkpoint/arxiv/{arch}-s{seed}", "kind": "train", "ref": f"{arch}-s{seed}",
                        "s": pick(v2["epochs"]) * train["step_s"] * ARCH_COST[arch],
                        "mem_gb": train["peak_rss_mb"] / 1024, "req_gb": request_gb("train", train)})
        for kind in ("continuous", "structure"):
            row = rows[kind]
            step, peak = row["step_s"], row["peak_rss_mb"]
            if kind == "structure":  # measured at --ratio candidates per edge; v2 samples 5
                scale = (1 + V2_CANDIDATE_RATIO) / (1 + figures.get("candidate_ratio", 1.0))
                step *= scale
                peak = row["rss_before_mb"] + (peak - row["rss_before_mb"]) * scale
            its = pick(v2["iterations"][kind])
            for seed in SEEDS[kind]:
                for stage in range(STAGES[arch]):
                    out.append({"name": f"set/arxiv/{arch}-s{seed}/{kind}/stage{stage + 1}", "kind": kind,
                                "ref": f"{arch}-s{seed}", "s": its * step * ARCH_COST[arch], "mem_gb": peak / 1024,
                                "req_gb": request_gb(kind, row)})
    return out


def simulate(work: list[dict], nodes: int, cpus: int, mem_gb: float, overhead_s: float) -> float:
    """Makespan (s) of ``work`` placed in order on ``nodes`` nodes of ``cpus`` CPUs and ``mem_gb`` GB."""
    free_cpu, free_mem = [cpus] * nodes, [mem_gb] * nodes
    done_refs: dict[str, float] = {}
    running: list[tuple[float, int, dict]] = []  # (end, node, unit)
    now, queue = 0.0, list(work)
    if any(u["req_gb"] > mem_gb for u in work):
        return float("inf")
    while queue or running:
        placed = True
        while placed:
            placed = False
            for u in list(queue):
                if u["kind"] != "train" and done_refs.get(u["ref"], float("inf")) > now:
                    continue
                node = next((n for n in range(nodes) if free_cpu[n] >= 1 and free_mem[n] >= u["req_gb"]), None)
                if node is None:
                    break
                free_cpu[node] -= 1
                free_mem[node] -= u["req_gb"]
                heapq.heappush(running, (now + u["s"] + overhead_s, node, id(u), u))
                queue.remove(u)
                placed = True
        end, node, _, u = heapq.heappop(running)
        now = end
        free_cpu[node] += 1
        free_mem[node] += u["req_gb"]
        if u["kind"] == "train":
            done_refs[u["ref"]] = now
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", type=Path, default=REPO / "docs" / "figures" / "bench_arxiv_unit.json")
    parser.add_argument("--ray", type=Path, default=REPO / "docs" / "figures" / "bench_ray.json")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    figures = json.loads(args.figures.read_text())
    bench = json.loads(args.ray.read_text())
    overhead = max(bench["tiny_ray"]["overhead_per_unit_s_max"], bench.get("v2_ray", {}).get("overhead_per_unit_s_max", 0))
    v2 = measured_v2()
    # Ray schedules by its `memory` resource: a node's available memory less the object store (30%
    # of it by default). Here: 24.1e9 bytes available, 16.9e9 of them `memory` by default (measured,
    # ray.cluster_resources()); `ray start --object-store-memory 2000000000` leaves about 20.5 GiB.
    shapes = {"1 node like this one (2 CPU, 24 GB; --object-store-memory 2e9: 20.5 GiB for tasks)": (1, 2, 20.5),
              "16 nodes like this one (same)": (16, 2, 20.5),
              "16 nodes of 16 CPU, 64 GB (Ray's default: 41.7 GiB for tasks)": (16, 16, 41.7)}
    out: dict = {"overhead_per_unit_s": overhead, "v2_iterations": {k: {"median": statistics.median(v), "max": max(v), "n": len(v)}
                                                                    for k, v in v2["iterations"].items()},
                 "v2_epochs": {"median": statistics.median(v2["epochs"]), "max": max(v2["epochs"])}, "cases": {}}
    for which in ("median", "max"):
        work = units(figures, v2, which)
        case = {"units": len([u for u in work if u["kind"] != "train"]), "checkpoints": len([u for u in work if u["kind"] == "train"]),
                "cpu_hours": round(sum(u["s"] + overhead for u in work) / 3600, 1),
                "longest_unit_h": round(max(u["s"] for u in work) / 3600, 2),
                "peak_gb_by_kind": {k: round(max(u["mem_gb"] for u in work if u["kind"] == k), 2)
                                    for k in ("train", "continuous", "structure")},
                "request_gb_by_kind": {k: round(max(u["req_gb"] for u in work if u["kind"] == k), 2)
                                       for k in ("train", "continuous", "structure")},
                "wall_h": {name: round(simulate(work, *shape, overhead) / 3600, 2) for name, shape in shapes.items()}}
        out["cases"][which] = case
        if which == "median":
            out["unit_list"] = [{"name": u["name"], "hours": round(u["s"] / 3600, 3), "peak_gb": round(u["mem_gb"], 2),
                                 "request_gb": round(u["req_gb"], 2)} for u in work]
    for u in out["unit_list"]:
        print(f"{u['name']:45s} {u['hours']:7.3f} h  peak {u['peak_gb']:5.2f} GB  request {u['request_gb']:5.2f} GB")
    for key in ("overhead_per_unit_s", "v2_iterations", "v2_epochs"):
        print(f"{key}: {out[key]}")
    for which, case in out["cases"].items():
        print(f"steps at the {which}: {json.dumps(case)}")
    if args.out:
        from benchmark.files import atomic_write_json

        atomic_write_json(args.out, out)


if __name__ == "__main__":
    main()
