"""The ``metamer-bench`` command line: one module per verb under ``benchmark.commands``.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Errors a user can fix (bad names, bad files) are ``UserError`` and print one clear line.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from benchmark.errors import UserError

# Verbs in the order ``--help`` lists them; each entry is a module of ``benchmark.commands``.
COMMAND_MODULES = [
    "list_registry",
    "train",
    "leaderboard",
    "evaluate",
    "validate",
    "generate",
    "build_release",
    "verify",
    "download",
]


def build_parser() -> argparse.ArgumentParser:
    from benchmark import __version__

    parser = argparse.ArgumentParser(prog="metamer-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"metamer-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f"benchmark.commands.{module_name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"metamer-bench {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
