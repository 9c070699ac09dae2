"""Benchmark (issue 14.6): scoring an exported program against the same model from the registry, same sets.

Target: scoring the program is at most 1.5x slower than scoring the registry model. The zoo entry's
weights (default ``submissions/gcn-baseline``) are loaded through intake, each model is wrapped so
that one forward pass returns ``(logits, hidden_1, ..., hidden_L)`` (the program contract), exported
with :func:`benchmark.programs.write_program_submission` into a temporary entry, and both entries
are scored on one evaluator, alternately, ``--repeat`` times. Two ratios are printed:

- ``end_to_end``: :func:`benchmark.scoring.evaluate_submission` (intake, with the red-flag checks,
  then inference and scores), the time a submitter waits;
- ``inference``: ``Evaluator.eval`` on the registry models against ``Evaluator.eval_programs`` on
  the loaded programs (the forward passes and the scores, no intake);
- ``intake``: :func:`benchmark.submissions.validate_submission` alone (safetensors and strict
  loading against archive checks and ``torch.export.load``; red flags in both).

Each phase is timed in wall seconds and in CPU seconds of the process (one torch thread by
default): on a shared machine the wall times swing by 2x between two runs of the same phase, the
CPU times much less, so the gate uses CPU time. The registry model's scores and the program's must
agree (they are one model): the script fails when the aggregate IC differs by more than 1e-6, and
exits 1 when the end-to-end median CPU ratio exceeds ``--max-ratio``.

    python scripts/bench_programs.py [--entry submissions/gcn-baseline] [--release data_cards/v1]
        [--dataset Cora ...] [--repeat 3] [--bootstrap 1000] [--threads 1] [--max-ratio 1.5] [--json out.json]
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
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.evaluate import Evaluator  # noqa: E402
from benchmark.files import atomic_write_json  # noqa: E402
from benchmark.metrics.scores import DEFAULT_BOOTSTRAP  # noqa: E402
from benchmark.models.base import Graph  # noqa: E402
from benchmark.programs import validate_programs, write_program_submission  # noqa: E402
from benchmark.release.loader import resolve_release  # noqa: E402
from benchmark.scoring import evaluate_submission  # noqa: E402
from benchmark.submission_card import read_submission  # noqa: E402
from benchmark.submissions import validate_submission  # noqa: E402


class Staged(nn.Module):
    """A registry :class:`~benchmark.models.GraphModel` in the program contract: one pass through its
    blocks returns the logits and the first ``num_stages`` hidden layers' activations (the same
    operations as its forward)."""

    def __init__(self, model, num_stages: int):
        super().__init__()
        self.model, self.num_stages = model, num_stages

    def forward(self, x, edge_index, edge_weight=None, batch=None):
        m = self.model
        graph = Graph(edge_index, edge_weight, batch)
        h, hidden = x, []
        for i, block in enumerate(m.blocks[:m.num_hidden_layers]):
            h = block(h, graph)
            if i == 0:
                graph.h0 = h
            if i < self.num_stages:
                hidden.append(h)
        if m.config.task == "graph":  # GraphHead, with the pooled size given (no int(tensor) in a program)
            head = m.head
            size = batch.max().item() + 1
            torch._check(size >= 1)
            torch._check(size <= batch.size(0))
            logits = head.lin2(head.act(head.lin1(head.pool(h, batch, size))))
        else:
            logits = m.head(h, graph)
        return (logits, *hidden)


def export_entry(entry: Path, evaluator: Evaluator, folder: Path) -> Path:
    """The zoo entry's models as a program submission at ``folder`` (same seeds, same weights)."""
    checked = validate_submission(entry, datasets=evaluator.datasets, dims=evaluator.dims)
    sub = checked.submission
    # One stage list per card: the hidden layers every dataset's model has (GCN: 1 on node tasks, 2 on graph tasks).
    stages = min(m.num_hidden_layers for models in checked.models.values() for m in models)
    card = {"name": f"{sub.name} (exported)", "authors": ["bench"], "paper_url": None, "code_url": None,
            "license": "MIT", "architecture": {"name": f"{sub.architecture}-program",
                                               "stages": [f"hidden{i}" for i in range(1, stages + 1)]},
            "training": {"data": f"the weights of {entry}", "recipe": "exported by scripts/bench_programs.py"},
            "seeds": sub.seeds}
    models = {d: {s: Staged(m, stages) for s, m in zip(sub.seeds, checked.models[d])} for d in evaluator.datasets}
    return write_program_submission(folder, card, models, dims=evaluator.dims)


CPU: dict[str, list[float]] = {}  # the same phases in CPU seconds of this process (one torch thread)


def timed(fn, name: str | None = None):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if name:
        CPU.setdefault(name, []).append(time.process_time() - cpu)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entry", type=Path, default=REPO / "submissions" / "gcn-baseline",
                        help="a registry (zoo) submission folder (default: submissions/gcn-baseline)")
    parser.add_argument("--release", default=None, help="release folder or name (default: v1)")
    parser.add_argument("--dataset", action="append", default=None,
                        help="score only these datasets of the release (repeatable; default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as `metamer-bench evaluate`)")
    parser.add_argument("--max-ratio", type=float, default=1.5, help="exit 1 if the end-to-end median ratio exceeds this")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: must be at least 1")
    torch.set_num_threads(args.threads)
    read_submission(args.entry)  # a missing or program entry fails here, with its own message
    release = resolve_release(args.release)
    evaluator = Evaluator(release, datasets=args.dataset, num_bootstrap=args.bootstrap)
    runs: dict[str, list[float]] = {"registry_end_to_end": [], "program_end_to_end": [],
                                    "registry_inference": [], "program_inference": [],
                                    "registry_intake": [], "program_intake": []}
    with tempfile.TemporaryDirectory() as tmp:
        program_entry, export_s = timed(lambda: export_entry(args.entry, evaluator, Path(tmp) / args.entry.name))
        print(f"exported {args.entry.name} as programs in {export_s:.1f} s (not timed below)", file=sys.stderr)
        models = validate_submission(args.entry, datasets=evaluator.datasets, dims=evaluator.dims)
        sub = read_submission(program_entry, datasets=evaluator.datasets)
        programs = validate_programs(sub, evaluator.datasets, evaluator.dims)
        for i in range(args.repeat):  # alternate, so that a change in machine load hits both
            reg, t = timed(lambda: evaluate_submission(args.entry, release, evaluator=evaluator), "registry_end_to_end")
            runs["registry_end_to_end"].append(t)
            prog, t = timed(lambda: evaluate_submission(program_entry, release, evaluator=evaluator), "program_end_to_end")
            runs["program_end_to_end"].append(t)
            reg_scores, t = timed(lambda: evaluator.eval(models.models, seeds=models.submission.seeds),
                                  "registry_inference")
            runs["registry_inference"].append(t)
            prog_scores, t = timed(lambda: evaluator.eval_programs(programs.models, sub.seeds, sub.architecture),
                                   "program_inference")
            runs["program_inference"].append(t)
            _, t = timed(lambda: validate_submission(args.entry, datasets=evaluator.datasets, dims=evaluator.dims),
                         "registry_intake")
            runs["registry_intake"].append(t)
            _, t = timed(lambda: validate_submission(program_entry, datasets=evaluator.datasets, dims=evaluator.dims),
                         "program_intake")
            runs["program_intake"].append(t)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in runs.items()), file=sys.stderr)
    ic = {"registry": reg["aggregate"]["invariance_consistency"]["mean"],
          "program": prog["aggregate"]["invariance_consistency"]["mean"]}
    if abs(ic["registry"] - ic["program"]) > 1e-6 or (
            reg_scores["aggregate"]["invariance_consistency"]["mean"]
            != prog_scores["aggregate"]["invariance_consistency"]["mean"]):
        print(f"the program does not score as its registry model: IC {ic}", file=sys.stderr)
        return 1
    medians = {k: statistics.median(v) for k, v in runs.items()}
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    parts = ("end_to_end", "inference", "intake")
    ratios = {part: medians[f"program_{part}"] / medians[f"registry_{part}"] for part in parts}
    cpu_ratios = {part: cpu[f"program_{part}"] / cpu[f"registry_{part}"] for part in parts}
    report = {"entry": args.entry.name, "release": reg["release"], "datasets": evaluator.datasets,
              "records": len(evaluator.records), "sets": len(evaluator.sets), "seeds": models.submission.seeds,
              "bootstrap": args.bootstrap, "torch_threads": torch.get_num_threads(), "repeat": args.repeat,
              "runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
              "median_s": {k: round(v, 2) for k, v in medians.items()},
              "ratio_program_over_registry": {k: round(v, 3) for k, v in ratios.items()},
              "cpu_s": {k: [round(x, 2) for x in v] for k, v in CPU.items()},
              "median_cpu_s": {k: round(v, 2) for k, v in cpu.items()},
              "cpu_ratio_program_over_registry": {k: round(v, 3) for k, v in cpu_ratios.items()},
              "max_ratio": args.max_ratio, "aggregate_ic": ic}
    print(json.dumps(report, indent=2))
    if args.json:
        atomic_write_json(args.json, report)
    if cpu_ratios["end_to_end"] > args.max_ratio:
        print(f"program scoring takes {cpu_ratios['end_to_end']:.2f}x the registry's CPU time (> {args.max_ratio})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
