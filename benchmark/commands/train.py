"""``metamer-bench train``: train one architecture on one dataset and write a checkpoint."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark.commands import positive_int

NAME = "train"
SUMMARY = "Train a zoo model on a base dataset and write a checkpoint."
HELP = "Train a zoo model on a base dataset; writes model.safetensors + card.json."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="registry name (see `metamer-bench list datasets`)")
    parser.add_argument("--model", required=True, help="architecture (see `metamer-bench list models`)")
    parser.add_argument("--seed", type=int, default=0, help="training seed: initialisation, dropout, shuffling (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="checkpoint folder (default runs/<dataset>/<model>/seed-<n>)")
    parser.add_argument("--config", type=str, default=None,
                        help="JSON object of ModelConfig overrides, e.g. '{\"activation\": \"elu\", \"residual\": true}'")
    parser.add_argument("--data-root", type=Path, default=None, help="folder holding <Dataset>/raw (default $METAMER_BENCH_DATA)")
    parser.add_argument("--download", action="store_true", help="allow fetching missing raw files from the canonical source")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="maximum epochs, >= 1 (default: the architecture's registry default; early stopping "
                             "on validation accuracy still applies)")
    parser.add_argument("--device", default="cpu", help="cpu (byte-reproducible) or cuda[:N]")


def run(args: argparse.Namespace) -> int:
    from benchmark.checkpoints import save_checkpoint
    from benchmark.errors import UserError
    from benchmark.graphs import load_dataset
    from benchmark.models import default_config
    from benchmark.training import train_model

    try:
        overrides = json.loads(args.config) if args.config is not None else {}
    except json.JSONDecodeError as err:
        raise UserError(f"--config is not valid JSON: {err}") from err
    if not isinstance(overrides, dict):
        raise UserError("--config must be a JSON object of ModelConfig fields")
    dataset = load_dataset(args.dataset, root=args.data_root, download=args.download)
    config = default_config(args.model, dataset.num_features, dataset.num_classes, task=dataset.task, **overrides)
    train_overrides = {"epochs": args.epochs} if args.epochs is not None else {}
    model, metrics = train_model(dataset, config, seed=args.seed, progress=True, device=args.device,
                                  **train_overrides)
    out = args.out if args.out is not None else Path("runs") / dataset.name / config.arch / f"seed-{args.seed}"
    save_checkpoint(model, out, {"dataset": dataset.name, "seed": args.seed, "metrics": metrics})
    print(f"{config.arch} on {dataset.name} (seed {args.seed}): val_acc {metrics['val_acc']:.4f}, "
          f"test_acc {metrics['test_acc']:.4f}, {metrics['epochs']} epochs, {metrics['wall_s']:.1f} s")
    print(f"checkpoint: {out}")
    return 0
