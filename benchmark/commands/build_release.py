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


def run(args: argparse.Namespace) -> int:
    from benchmark.release.build import ReleaseBuilder, ReleaseConfig

    config = ReleaseConfig.from_yaml(args.config)
    out = args.out if args.out is not None else Path("data_cards") / config.release
    manifest = ReleaseBuilder(config, out).build()
    print(f"release {config.name} {config.version} written to {out} ({len(config.jobs())} sets)")
    return 0
