"""``metamer-bench build-release``: build (or resume) a frozen release from a YAML config."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "build-release"
HELP = "Build or resume a frozen release (checkpoints, metamer shards, data card, manifest) from a config."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("scripts/release_v1.yaml"))
    parser.add_argument("--out", type=Path, default=None, help="release folder (default data_cards/<release>)")


def run(args: argparse.Namespace) -> int:
    from benchmark.release.build import ReleaseBuilder, ReleaseConfig

    config = ReleaseConfig.from_yaml(args.config)
    out = args.out or Path("data_cards") / config.release
    manifest = ReleaseBuilder(config, out).build()
    print(f"release {config.name} {config.version} written to {out} ({len(config.jobs())} sets)")
    return 0
