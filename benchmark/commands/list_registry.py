"""``metamer-bench list datasets|models``: print the registries."""
from __future__ import annotations

import argparse

NAME = "list"
HELP = "List the registered base datasets or reference architectures."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["datasets", "models"], help="which registry to print")


def run(args: argparse.Namespace) -> int:
    if args.what == "datasets":
        from benchmark.graphs import REGISTRY

        print(f"{'name':<10} {'task':<6} {'split':<9} citation")
        for spec in REGISTRY.values():
            print(f"{spec.name:<10} {spec.task:<6} {spec.split:<9} {spec.citation}")
    else:
        from benchmark.models import MODEL_REGISTRY

        width = max(len("name"), *(len(name) for name in MODEL_REGISTRY))
        print(f"{'name':<{width}} description")
        for spec in MODEL_REGISTRY.values():
            print(f"{spec.name:<{width}} {spec.description}")
    return 0
