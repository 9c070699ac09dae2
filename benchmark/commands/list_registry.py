"""``metamer-bench list datasets|models``: print the registries (``--json``: one JSON document)."""
from __future__ import annotations

import argparse
import json

NAME = "list"
SUMMARY = "List registered base datasets or reference architectures."
HELP = SUMMARY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["datasets", "models"], help="which registry to print")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON document {"datasets"|"models": [{...}, ...]} instead of a table')


def run(args: argparse.Namespace) -> int:
    if args.what == "datasets":
        from benchmark.graphs import REGISTRY

        rows = [{"name": s.name, "task": s.task, "split": s.split, "citation": s.citation, "license": s.license}
                for s in REGISTRY.values()]
        if args.json:
            print(json.dumps({"datasets": rows}, indent=2))
            return 0
        print(f"{'name':<10} {'task':<6} {'split':<9} citation")
        for row in rows:
            print(f"{row['name']:<10} {row['task']:<6} {row['split']:<9} {row['citation']}")
    else:
        from benchmark.models import MODEL_REGISTRY

        rows = [{"name": s.name, "description": s.description} for s in MODEL_REGISTRY.values()]
        if args.json:
            print(json.dumps({"models": rows}, indent=2))
            return 0
        width = max(len("name"), *(len(row["name"]) for row in rows))
        print(f"{'name':<{width}} description")
        for row in rows:
            print(f"{row['name']:<{width}} {row['description']}")
    return 0
