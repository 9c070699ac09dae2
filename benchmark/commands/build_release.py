"""``metamer-bench build-release``: build (or resume) a frozen release from a YAML config.

``--executor ray [--address HOST:PORT]`` runs the release's units as Ray tasks
(:mod:`benchmark.executors.ray_build`); the result is byte-identical to the in-process build.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands import positive_int

NAME = "build-release"
SUMMARY = "Build or resume a frozen release from a YAML config."
HELP = "Build or resume a frozen release (checkpoints, metamer shards, data card, manifest) from a config."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("scripts/release_v1.yaml"),
                        help="release config YAML (default: scripts/release_v1.yaml, relative to the working directory)")
    parser.add_argument("--out", type=Path, default=None,
                        help="release folder (default: data_cards/<release> in the working directory, where a "
                             "release name finds it)")
    parser.add_argument("--max-sets", type=int, default=None, metavar="N",
                        help="build at most N new sets, then stop (the state is kept; run again to go on)")
    parser.add_argument("--max-minutes", type=float, default=None, metavar="M",
                        help="start no new set after M minutes, then stop (the state is kept; run again to go on)")
    ray = parser.add_argument_group("running on Ray (optional extra: pip install -e \".[ray]\")")
    ray.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local (default): build in this process; ray: every set (and reference model) is a "
                          "Ray task, written here as it finishes, byte-identical to a local build")
    ray.add_argument("--address", default=None, metavar="HOST:PORT",
                     help="Ray cluster to run on (the address `ray start --head` prints, or auto); default: "
                          "start a local Ray instance on this machine for the build")
    ray.add_argument("--workers", type=positive_int, default=None, metavar="N",
                     help="CPU slots of the local Ray instance started without --address (default: every core)")
    ray.add_argument("--cpus-per-unit", type=float, default=1.0, metavar="C",
                     help="CPUs each Ray task asks for and runs torch with (default 1)")
    ray.add_argument("--memory-per-unit", type=float, default=None, metavar="GIB",
                     help="memory each Ray task asks for, in GiB (default: estimated from the dataset's size, "
                          "docs/ray.md)")
    ray.add_argument("--device", default="cpu",
                     help="cpu (default) or cuda: with --executor ray each task then asks for one GPU and trains "
                          "its reference model there")


def run(args: argparse.Namespace) -> int:
    from benchmark.errors import UserError
    from benchmark.executors import check_executor
    from benchmark.release.build import BuildIncomplete, ReleaseBuilder, ReleaseConfig

    check_executor(args.executor, args.address)
    ray_only = {"--workers": args.workers is not None, "--cpus-per-unit": args.cpus_per_unit != 1.0,
                "--memory-per-unit": args.memory_per_unit is not None, "--device": args.device != "cpu"}
    if args.executor != "ray" and any(ray_only.values()):
        raise UserError(f"{', '.join(k for k, v in ray_only.items() if v)} only apply with --executor ray "
                        "(the local build runs on the CPU with torch's default threads)")
    if args.workers is not None and args.address is not None:
        raise UserError("--workers sizes a local Ray instance; a cluster given by --address has its own workers")
    config = ReleaseConfig.from_yaml(args.config)
    out = args.out if args.out is not None else Path("data_cards") / config.release
    builder = ReleaseBuilder(config, out)
    try:
        if args.executor == "ray":
            from benchmark.devices import check_device
            from benchmark.executors.ray_build import TaskRequest, build_with_ray

            if args.address is None:
                check_device(args.device)  # a local instance has this machine's devices
            memory = None if args.memory_per_unit is None else int(args.memory_per_unit * 2**30)
            build_with_ray(builder, TaskRequest(cpus=args.cpus_per_unit, memory=memory, device=args.device),
                           address=args.address, only=args.max_sets, minutes=args.max_minutes,
                           num_cpus=args.workers, log=print)
        else:
            builder.build(only=args.max_sets, minutes=args.max_minutes)
    except BuildIncomplete as err:
        if args.max_sets is None and args.max_minutes is None:
            raise
        print(f"stopped as asked: {err}")  # a partial build by request is not a failure
        return 0
    print(f"release {config.name} {config.version} written to {out} ({len(builder.units())} sets)")
    return 0
