"""``metamer-bench download RELEASE --from SOURCE [--to DIR]``.

The default target is the cache folder where a release name is looked up from any working
directory (``$METAMER_BENCH_CACHE/releases/<release>``; see :mod:`benchmark.release.locate`).
Exit 1 when the download fails (retries spent, a file that does not match its hash), 2 for a bad
release name or source.
"""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "download"
SUMMARY = "Download a release into the cache, hash-checked, resumable."
HELP = ("Download a release: manifest first, then every file, each written to a temporary name, SHA-256-checked "
        "and renamed; transient errors are retried with backoff and partial files resumed (HTTP Range).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from benchmark.release.download import DEFAULT_RETRIES

    parser.add_argument("release", help="release name, e.g. v1")
    parser.add_argument("--from", dest="source", required=True,
                        help="http(s) URL of a release folder, a local release folder (or file:// URL), or a hub "
                             "dataset id org/name")
    parser.add_argument("--to", type=Path, default=None,
                        help="target folder (default: $METAMER_BENCH_CACHE/releases/<release>, default cache "
                             "~/.cache/metamer-bench, where `--release <release>` finds it from any folder)")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES,
                        help=f"retries per file after a transient error, with exponential backoff (default {DEFAULT_RETRIES})")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a request is retried "
                                                                     "(default 60)")
    parser.add_argument("--no-progress", action="store_true", help="hide the per-file progress bars (on stderr)")


def run(args: argparse.Namespace) -> int:
    from benchmark.errors import UserError
    from benchmark.release.download import download_release

    if args.retries < 0:
        raise UserError(f"--retries must be >= 0, got {args.retries}")
    if not args.timeout > 0:
        raise UserError(f"--timeout must be > 0, got {args.timeout}")
    path = download_release(args.release, args.source, args.to, args.timeout, retries=args.retries,
                            progress=not args.no_progress)
    print(f"release {args.release} downloaded and verified in {path}")
    return 0
