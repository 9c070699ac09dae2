"""``metamer-bench download RELEASE --from URL_OR_HUB_ID [--to DIR]``."""
from __future__ import annotations

import argparse

NAME = "download"
HELP = "Download a release (manifest first, then every file, each SHA-256-checked and written atomically)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("release", help="release tag, e.g. v1")
    parser.add_argument("--from", dest="source", required=True, help="URL of a release folder or a hub dataset id")
    parser.add_argument("--to", type=str, default=None, help="target folder (default data_cards/<release>)")


def run(args: argparse.Namespace) -> int:
    from benchmark.release.download import download_release

    path = download_release(args.release, args.source, args.to)
    print(f"release {args.release} downloaded and verified in {path}")
    return 0
