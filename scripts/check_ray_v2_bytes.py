"""Does a Ray build reproduce the committed parts of release v2 byte for byte? (issue 15, docs/ray.md)

Builds the v2 slice of ``scripts/bench_ray.py`` (Cora, GCN, reference seed 1000, feature kind,
early and logits stages: 1 checkpoint, 2 shards) on a local Ray instance with ``--cpus`` CPUs and
torch threads per task (default 2: the thread count the committed parts were built with), then
prints, per file, whether it equals ``data_cards/v2``'s. Exit 1 if any differs. About 4 minutes here::

    python scripts/check_ray_v2_bytes.py [--cpus 2] [--work DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the local instance listens on 127.0.0.1 only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ray import REPO, v2_slice  # noqa: E402

from benchmark.executors.ray_build import TaskRequest, build_with_ray  # noqa: E402
from benchmark.release.build import ReleaseBuilder  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpus", type=float, default=2.0, help="CPUs (and torch threads) per task (default 2)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    root = (args.work or Path(tempfile.mkdtemp(prefix="check-ray-v2-"))) / "v2"
    start = time.perf_counter()
    build_with_ray(ReleaseBuilder(v2_slice(), root, progress=False), TaskRequest(cpus=args.cpus),
                   num_cpus=max(2, int(args.cpus)), log=print)
    print(f"wall {time.perf_counter() - start:.1f} s")
    committed = REPO / "data_cards" / "v2"
    ours = sorted((root / "data" / "Cora").glob("*.parquet")) + sorted((root / "checkpoints").rglob("*.*"))
    same = {str(p.relative_to(root)): p.read_bytes() == (committed / p.relative_to(root)).read_bytes() for p in ours}
    for name, equal in same.items():
        print(f"{name}: {'identical to' if equal else 'DIFFERS from'} data_cards/v2")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
