"""Release builds in process vs on Ray (a local instance with two one-CPU workers) on this machine.

Issue 15, docs/ray.md. In one run, each build into a fresh folder under ``--work``:

1. Ray's fixed costs: start-up of a local instance, and the round trip of a no-op task (``--noop``).
2. The tiny release of the tests (``tests/test_release.py``'s ``TINY``: Cora GCN and MUTAG GIN,
   feature and structure, 8 metamer steps; 2 checkpoints, 4 units): in process with torch's
   default threads, in process with one thread, and on Ray (``--workers 2``, one CPU and one
   thread per unit). Checks that Ray's files are byte-identical to the one-thread build's.
3. With ``--v2``: a real slice of release v2 (``scripts/release_v2.yaml``: Cora, GCN, reference
   seed 1000, the feature kind at the early and logits stages: 1 checkpoint, 2 units), in process
   (default threads, and one thread) and on Ray, whether Ray's files equal the one-thread build's,
   and whether the shards equal the committed ``data_cards/v2`` ones.

Prints every time and the ratios, and writes them as JSON (``--out``). Datasets are loaded once
before timing (their cache is warm for both executors; Ray's workers still load them themselves,
which counts against Ray). Usage::

    python scripts/bench_ray.py --v2 --out docs/figures/bench_ray.json   # about 8 minutes here
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the local instance listens on 127.0.0.1 only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import torch  # noqa: E402

from benchmark.files import atomic_write_json, read_json  # noqa: E402
from benchmark.release.build import ReleaseBuilder, ReleaseConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# = tests/test_release.py TINY (kept in step by hand: a script does not import the tests).
TINY = {
    "name": "metamer-bench-test", "release": "v0", "version": "0.0.1", "seeds": [0], "kinds": ["feature", "structure"],
    "train_seed": 0, "metamer_options": {"max_iterations": 8}, "train_options": {"epochs": 25, "patience": 25},
    "datasets": {"Cora": {"models": ["gcn"]}, "MUTAG": {"models": ["gin"]}},
}


def v2_slice() -> ReleaseConfig:
    config = ReleaseConfig.from_yaml(REPO / "scripts" / "release_v2.yaml")
    config.datasets = {"Cora": {"models": ["gcn"], "kinds": ["feature"]}}
    config.kinds, config.reference_seeds, config.reference_seeds_by_kind = ["feature"], [1000], {}
    config.stages = ["early", "logits"]
    config.check()
    return config


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".build" not in p.relative_to(root).parts}


def local_build(config: ReleaseConfig, root: Path, threads: int | None) -> float:
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        ReleaseBuilder(config, root, progress=False).build()
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(before)


def ray_build(config: ReleaseConfig, root: Path) -> tuple[float, dict]:
    from benchmark.executors.ray_build import TaskRequest, build_with_ray

    start = time.perf_counter()
    build_with_ray(ReleaseBuilder(config, root, progress=False), TaskRequest(cpus=1))
    wall = time.perf_counter() - start
    steps = read_json(root / ".build" / "state.json")["steps"]
    units = [v for k, v in steps.items() if k.startswith("set/")]
    overhead = [u["round_trip_s"] - u["task_s"] for u in units]
    return wall, {"units": len(units), "unit_task_s": [u["task_s"] for u in units],
                  "unit_round_trip_s": [u["round_trip_s"] for u in units],
                  "overhead_per_unit_s_mean": round(statistics.mean(overhead), 3),
                  "overhead_per_unit_s_max": round(max(overhead), 3),
                  "peak_rss_mb": [u["peak_rss_mb"] for u in units],
                  "unit_compute_s": [u["wall_s"] for u in units]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--noop", type=int, default=200, help="no-op tasks timed for the per-task round trip")
    parser.add_argument("--v2", action="store_true", help="also build the release v2 slice both ways (~10 min)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ray-"))
    from benchmark.graphs import load_dataset

    for name in ("Cora", "MUTAG"):
        load_dataset(name)  # warm the cache before timing anything
    out: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch default threads "
                            f"{torch.get_num_threads()}", "load_avg_at_start": os.getloadavg()}

    tiny = ReleaseConfig(**copy.deepcopy(TINY))
    tiny.check()
    out["tiny_local_default_threads_s"] = round(local_build(tiny, work / "local" / "v0", None), 2)
    out["tiny_local_1_thread_s"] = round(local_build(tiny, work / "local1" / "v0", 1), 2)

    import ray

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    out["ray_startup_s"] = round(time.perf_counter() - start, 2)
    try:
        noop = ray.remote(lambda: None)
        ray.get(noop.remote())  # first call starts a worker; not counted
        start = time.perf_counter()
        for _ in range(args.noop):
            ray.get(noop.remote())
        out["noop_task_round_trip_ms"] = round(1000 * (time.perf_counter() - start) / args.noop, 2)
        wall, facts = ray_build(tiny, work / "ray" / "v0")
        out["tiny_ray_2_workers_s"] = round(wall, 2)
        out["tiny_ray"] = facts
        a, b = files(work / "ray" / "v0"), files(work / "local1" / "v0")
        out["tiny_ray_equals_local_1_thread"] = a == b
        out["tiny_ray_equals_local_default_threads"] = a == files(work / "local" / "v0")
        if args.v2:
            config = v2_slice()
            out["v2_local_default_threads_s"] = round(local_build(config, work / "v2-local" / "v2", None), 2)
            steps = read_json(work / "v2-local" / "v2" / ".build" / "state.json")["steps"]
            out["v2_local_steps_s"] = {k: v.get("wall_s") for k, v in steps.items() if not k.startswith("base/")}
            out["v2_local_1_thread_s"] = round(local_build(config, work / "v2-local1" / "v2", 1), 2)
            steps = read_json(work / "v2-local1" / "v2" / ".build" / "state.json")["steps"]
            out["v2_local_1_thread_steps_s"] = {k: v.get("wall_s") for k, v in steps.items()
                                                if not k.startswith("base/")}
            wall, facts = ray_build(config, work / "v2-ray" / "v2")
            out["v2_ray_2_workers_s"] = round(wall, 2)
            out["v2_ray"] = facts
            out["v2_ray_equals_local_1_thread"] = files(work / "v2-ray" / "v2") == files(work / "v2-local1" / "v2")
            committed = REPO / "data_cards" / "v2"
            for label in ("v2-local", "v2-local1", "v2-ray"):
                ours = work / label / "v2"
                out[f"{label}_shards_equal_committed"] = {
                    str(p.relative_to(ours)): p.read_bytes() == (committed / p.relative_to(ours)).read_bytes()
                    for p in sorted((ours / "data" / "Cora").glob("*.parquet"))}
    finally:
        ray.shutdown()
    out["load_avg_at_end"] = os.getloadavg()

    ratios = {"tiny: ray(2 workers) / local(default threads)": out["tiny_ray_2_workers_s"] / out["tiny_local_default_threads_s"],
              "tiny: (ray start-up + ray build) / local(default threads)":
                  (out["ray_startup_s"] + out["tiny_ray_2_workers_s"]) / out["tiny_local_default_threads_s"],
              "tiny: ray(2 workers) / local(1 thread)": out["tiny_ray_2_workers_s"] / out["tiny_local_1_thread_s"]}
    if args.v2:
        ratios["v2 slice: ray(2 workers) / local(default threads)"] = (out["v2_ray_2_workers_s"]
                                                                       / out["v2_local_default_threads_s"])
        ratios["v2 slice: ray(2 workers) / local(1 thread)"] = out["v2_ray_2_workers_s"] / out["v2_local_1_thread_s"]
    out["ratios"] = {k: round(v, 3) for k, v in ratios.items()}
    for key, value in out.items():
        print(f"{key}: {value}")
    if args.out:
        atomic_write_json(args.out, out)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
