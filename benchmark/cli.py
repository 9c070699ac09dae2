"""The ``metamer-bench`` command line: one module per verb under ``benchmark.commands``.

Each command module defines ``NAME``, ``SUMMARY`` (one line, short enough for 80 columns, for the verb
list that ``metamer-bench`` alone and ``--help`` print), ``HELP`` (the verb's description),
``add_arguments(parser)`` (every option with help text) and ``run(args) -> int``.

Exit codes (also in ``--help`` and the README): 0 success; 1 a run or check failed on readable
input (``verify`` found problems, ``leaderboard --check`` found stale files, a submission was
refused at intake, a download kept failing or did not match its hashes: :class:`CheckFailed`);
2 a usage or input error (argparse errors, unknown names, a path that does not exist, malformed
JSON options: any other :class:`UserError`). Errors print one line on stderr, never a traceback.
With ``--json`` a failed check also prints ``{"ok": false, "error": ...}`` on stdout, so a
machine reader always gets one JSON document unless the command line itself was wrong.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import textwrap

from benchmark.errors import CheckFailed, UserError

# Verbs in the order ``--help`` lists them; each entry is a module of ``benchmark.commands``.
COMMAND_MODULES = [
    "list_registry",
    "train",
    "leaderboard",
    "evaluate",
    "predict_template",
    "score_predictions",
    "rerun",
    "validate",
    "generate",
    "build_release",
    "verify",
    "download",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CODES = ("exit status: 0 success; 1 a run or check failed (verify found problems, leaderboard --check found "
              "stale files, a submission was refused at intake, a download failed); 2 usage or input error "
              "(bad option, unknown name, missing path).")
DESCRIPTION = "Benchmark suite and leaderboard for model metamers of graph neural networks."


def _verb_list(modules) -> str:
    """The verbs, one line each: written here because argparse wraps a long verb name's help onto
    a second line."""
    width = max(len(m.NAME) for m in modules) + 2
    lines = ["commands (metamer-bench COMMAND --help for each):"]
    lines += [f"  {m.NAME:<{width}}{m.SUMMARY}" for m in modules]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from benchmark import __version__

    modules = [importlib.import_module(f"benchmark.commands.{name}") for name in COMMAND_MODULES]
    epilog = _verb_list(modules) + "\n\n" + textwrap.fill(EXIT_CODES, 79)
    parser = argparse.ArgumentParser(prog="metamer-bench", usage="%(prog)s [-h] [--version] COMMAND ...",
                                     description=DESCRIPTION, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"metamer-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS)
    for module in modules:
        # description is shown as written; argparse %-formats only help strings, never descriptions
        command = sub.add_parser(module.NAME, prog=f"metamer-bench {module.NAME}", description=module.HELP,
                                 epilog=EXIT_CODES)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (argparse's own exits, --help included, are returned too)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help / --version (0) and usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.command is None:
        # No verb: the usage and the verb list (one line each), as a usage error.
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except CheckFailed as err:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": str(err)}))
        print(f"metamer-bench {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except UserError as err:
        print(f"metamer-bench {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
