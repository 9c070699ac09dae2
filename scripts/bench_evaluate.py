"""Benchmark: wall time of scoring one 3-seed submission on a whole release (target: <= 60 s on 2 cores).

Measures ``evaluate_submission`` end to end (load + verify the release, validate the submission and
load its weights, inference on every record, scores and bootstrap CIs), repeated, and the time of
each phase once. Without ``--entry`` a temporary submission is made first (not timed): one
``--arch`` model per dataset of the release and seed, trained briefly with ``train_model``.

    python scripts/bench_evaluate.py [--release data_cards/v1] [--entry submissions/gcn-baseline]
        [--repeat 3] [--bootstrap 1000] [--threads N] [--budget 60] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.evaluate import Evaluator  # noqa: E402
from benchmark.files import atomic_write_json  # noqa: E402
from benchmark.metrics.scores import DEFAULT_BOOTSTRAP  # noqa: E402
from benchmark.models import count_parameters, default_config  # noqa: E402
from benchmark.release.loader import resolve_release  # noqa: E402
from benchmark.scoring import evaluate_submission  # noqa: E402
from benchmark.submissions import validate_submission, write_submission  # noqa: E402

SEEDS = (0, 1, 2)


def make_submission(folder: Path, datasets: list[str], arch: str, epochs: int) -> Path:
    """A 3-seed submission of ``arch`` covering ``datasets`` (registry defaults, ``epochs`` epochs)."""
    from benchmark.graphs import load_dataset
    from benchmark.training import train_model

    blocks, weights, params, config_fields = {}, {}, [], {}
    for name in datasets:
        dataset = load_dataset(name)
        config = default_config(arch, dataset.num_features, dataset.num_classes, task=dataset.task)
        weights[name] = {seed: train_model(dataset, config, seed=seed, epochs=epochs, patience=epochs)[0]
                         for seed in SEEDS}
        params.append(count_parameters(weights[name][SEEDS[-1]]))
        config_fields = {k: v for k, v in config.to_dict().items() if k not in ("arch", "in_channels", "out_channels", "task")}
        blocks[name] = {"config": config_fields}
    card = {"name": f"bench-{arch}", "authors": ["bench"], "paper_url": None, "code_url": None, "license": "MIT",
            "tier": "self-reported", "architecture": {"name": arch, "config": config_fields},
            "training": {"data": "public train split", "recipe": f"train_model, {epochs} epochs"},
            "seeds": list(SEEDS), "num_parameters": max(params), "datasets": blocks}
    return write_submission(folder, card, weights)


def phases(entry: Path, release: Path, bootstrap: int) -> dict[str, float]:
    """Seconds per phase of one evaluation."""
    out = {}
    t = time.perf_counter()
    evaluator = Evaluator(release, num_bootstrap=bootstrap)
    out["load_and_verify_release"] = time.perf_counter() - t
    t = time.perf_counter()
    checked = validate_submission(entry, datasets=evaluator.datasets, dims=evaluator.dims)
    out["validate_and_load_weights"] = time.perf_counter() - t
    t = time.perf_counter()
    probs = evaluator.predict(checked.models)
    out["inference"] = time.perf_counter() - t
    t = time.perf_counter()
    evaluator.score_probabilities(probs, checked.submission.seeds, checked.submission.architecture)
    out["scores_and_bootstrap"] = time.perf_counter() - t
    out["records"] = len(evaluator.records)
    out["sets"] = len(evaluator.sets)
    out["units"] = sum(i.num_units for i in evaluator._index)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default=None, help="release folder (default: the shipped data_cards/v1)")
    parser.add_argument("--entry", type=Path, default=None, help="submission folder (default: a temporary one)")
    parser.add_argument("--arch", default="gcn", help="architecture of the temporary submission")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of the temporary submission")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as `metamer-bench evaluate`)")
    parser.add_argument("--budget", type=float, default=60.0, help="exit 1 if the slowest run exceeds this (s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    release = resolve_release(args.release)
    with tempfile.TemporaryDirectory() as tmp:
        entry = args.entry
        if entry is None:
            datasets = Evaluator(release, num_bootstrap=1).datasets
            t = time.perf_counter()
            entry = make_submission(Path(tmp) / "bench-entry", datasets, args.arch, args.epochs)
            print(f"temporary submission: {args.arch} x {len(SEEDS)} seeds on {datasets} "
                  f"(trained in {time.perf_counter() - t:.0f} s, not timed)")
        walls = []
        for i in range(args.repeat):
            t = time.perf_counter()
            result = evaluate_submission(entry, release, num_bootstrap=args.bootstrap)
            walls.append(time.perf_counter() - t)
            print(f"run {i + 1}: evaluate_submission {walls[-1]:.2f} s")
        detail = phases(entry, release, args.bootstrap)
    report = {"release": result["release"], "entry": result["entry"], "seeds": result["submission"]["seeds"],
              "bootstrap": args.bootstrap, "torch_threads": torch.get_num_threads(), "runs_s": [round(w, 2) for w in walls],
              "median_s": round(statistics.median(walls), 2), "max_s": round(max(walls), 2),
              "phases_s": {k: round(v, 2) if isinstance(v, float) else v for k, v in detail.items()},
              "budget_s": args.budget, "aggregate_ic": result["aggregate"]["invariance_consistency"]}
    print(json.dumps(report, indent=2))
    if args.json:
        atomic_write_json(args.json, report)
    if max(walls) > args.budget:
        print(f"over budget: {max(walls):.1f} s > {args.budget:.0f} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
