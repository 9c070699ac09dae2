"""``metamer-bench build-release``: build (or resume) a frozen release from a YAML config."""
from __future__ import annotations

import argparse
from pathlib import Path

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


def run(args: argparse.Namespace) -> int:
    from benchmark.release.build import BuildIncomplete, ReleaseBuilder, ReleaseConfig

    config = ReleaseConfig.from_yaml(args.config)
    out = args.out if args.out is not None else Path("data_cards") / config.release
    builder = ReleaseBuilder(config, out)
    try:
        builder.build(only=args.max_sets, minutes=args.max_minutes)
    except BuildIncomplete as err:
        if args.max_sets is None and args.max_minutes is None:
            raise
        print(f"stopped as asked: {err}")  # a partial build by request is not a failure
        return 0
    print(f"release {config.name} {config.version} written to {out} ({len(builder.units())} sets)")
    return 0
