"""``metamer-bench generate``: metamers (+ twins) of one dataset for one reference model."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark.commands import positive_int
NAME = "generate"
SUMMARY = "Generate metamers and twins for one dataset and model."
HELP = "Generate feature/structure/joint metamers with near/far twins; writes parquet records + stats.json."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="registry name (see `metamer-bench list datasets`)")
    parser.add_argument("--model", required=True, help="reference architecture (see `metamer-bench list models`)")
    parser.add_argument("--kind", required=True, help="feature, continuous, structure or joint")
    parser.add_argument("--layer", type=int, default=None,
                        help="stage to match: a hidden layer 1..L, or L + 1 for the logits (default: the last hidden layer)")
    parser.add_argument("--protocol", default="v2", choices=("v1", "v2"),
                        help="controls and validity: v2 (centred null, far twins at the metamer's distance; default) "
                             "or v1 (release v1's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="metamer seeds (restarts)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/metamers/<dataset>/<model>/<kind>)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="reference checkpoint folder (model.safetensors + card.json); default: train one")
    parser.add_argument("--train-seed", type=int, default=0, help="seed for training the reference model")
    parser.add_argument("--max-iterations", type=positive_int, default=None,
                        help="optimisation steps per restart, >= 1 (default: MetamerOptions.max_iterations)")
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam step size for feature logits / continuous features (default: MetamerOptions.lr)")
    parser.add_argument("--candidate-ratio", type=float, default=None, help="structure: sampled non-edges per edge")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cpu)")
    parser.add_argument("--options", default=None, help="JSON object of further MetamerOptions fields")
    parser.add_argument("--data-root", type=Path, default=None, help="folder holding <Dataset>/raw (default $METAMER_BENCH_DATA)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from benchmark.checkpoints import load_checkpoint
    from benchmark.errors import UserError, unknown_choice
    from benchmark.files import atomic_write_json
    from benchmark.graphs import load_dataset
    from benchmark.metamers import KINDS, make_frozen_set, seed_summary
    from benchmark.models import MODEL_REGISTRY, default_config

    if args.kind not in KINDS:
        raise unknown_choice("kind", args.kind, KINDS)
    if args.model not in MODEL_REGISTRY:
        raise unknown_choice("model", args.model, MODEL_REGISTRY)
    try:
        options = json.loads(args.options) if args.options is not None else {}
    except json.JSONDecodeError as err:
        raise UserError(f"--options is not valid JSON: {err}") from err
    if not isinstance(options, dict):
        raise UserError("--options must be a JSON object of MetamerOptions fields")
    for flag, name in (("max_iterations", "max_iterations"), ("lr", "lr"), ("candidate_ratio", "candidate_ratio"),
                       ("device", "device")):
        if getattr(args, flag) is not None:
            options[name] = getattr(args, flag)
    from benchmark.metamers import MetamerOptions

    MetamerOptions.from_kwargs(**options)  # fail on a bad option before any training
    dataset = load_dataset(args.dataset, root=args.data_root)
    from benchmark.models import build_model

    # Check the layer against the architecture before spending time on training.
    build_model(default_config(args.model, dataset.num_features, dataset.num_classes, task=dataset.task)).check_stage(args.layer)
    if args.checkpoint is not None:
        model, card = load_checkpoint(args.checkpoint)
        if model.config.arch != args.model:
            raise UserError(f"--checkpoint holds a {model.config.arch!r} model but --model is {args.model!r}")
        reference = {"checkpoint": str(args.checkpoint), "weights_sha256": card.get("weights_sha256")}
    else:
        from benchmark.training import train_model

        config = default_config(args.model, dataset.num_features, dataset.num_classes, task=dataset.task)
        model, metrics = train_model(dataset, config, seed=args.train_seed, progress=not args.no_progress)
        reference = {"trained": True, "train_seed": args.train_seed, "metrics": metrics}
    layer = model.check_stage(args.layer)
    frozen_set = make_frozen_set(dataset, model, args.model, args.kind, list(args.seeds), layer,
                                 progress=not args.no_progress, protocol=args.protocol, **options)
    out = args.out if args.out is not None else Path("runs") / "metamers" / dataset.name / args.model / args.kind
    out.mkdir(parents=True, exist_ok=True)
    from benchmark.release.shards import write_records

    records = frozen_set.originals + frozen_set.variants
    shard = out / "records.parquet"
    write_records(shard, records)
    summary = seed_summary(frozen_set)
    atomic_write_json(out / "stats.json", {
        "dataset": dataset.name, "model": args.model, "kind": args.kind, "layer": layer, "seeds": list(args.seeds),
        "options": options, "reference": reference, "records": str(shard.name), "num_records": len(records),
        "per_seed": summary,
    })
    for seed, s in summary.items():
        print(f"seed {seed}: rel_loss {s.get('rel_loss')}, validity {s.get('validity_rate')}, "
              f"feature cosine {s.get('feature_cosine_mean')}, edge Jaccard {s.get('edge_jaccard')}, "
              f"{s.get('iterations')} iterations, {s.get('wall_s')} s")
    print(f"wrote {shard} and {out / 'stats.json'}")
    return 0
