"""Wall time of the reverse direction (scores v2, issue 12.2) for baselines on a release's protocol.

    python scripts/bench_reverse.py                                  # gcn-baseline, 3 seeds, data_cards/v2
    python scripts/bench_reverse.py --entries gcn-baseline gat-baseline gcnii-baseline
    python scripts/bench_reverse.py --max-iterations 400             # a shorter protocol, to compare

Runs exactly what ``metamer-bench evaluate`` runs in the reverse direction
(:class:`benchmark.evaluate.reverse.ReverseRun`, no cache, no budget enforced) with one torch thread
(evaluate's default), and prints per entry the CPU time (what the budget counts: the wall time of
an unloaded core with one thread) per seed and in all, and the wall time, against the budget of 10
minutes of a 2-core CPU for 3 seeds (DESIGN 4), with the recognisability per stage. Figures are
also written with ``--json``.

A release whose ``MANIFEST.json`` is not written yet (``data_cards/v2`` while it is finalised) is
read provisionally: its checkpoints, bases and shards as they are on disk, its protocol from the
release config (``--config``); the printout says so. The times do not depend on the manifest.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def provisional_release(root: Path, config_path: Path):
    """A :class:`Release` over a built folder without its manifest (no checks): checkpoints, bases and
    shards found on disk, ``generator.config`` from the release config."""
    import yaml

    from benchmark.release.opened import Release, VerificationMode

    config = yaml.safe_load(config_path.read_text())
    files = {str(p.relative_to(root)): {"bytes": p.stat().st_size} for p in root.rglob("*")
             if p.is_file() and ".build" not in p.parts}
    bases = {p.stem: f"data/bases/{p.name}" for p in (root / "data" / "bases").glob("*.parquet")}
    sets = []
    for shard in sorted((root / "data").glob("*/*.parquet")):
        if shard.parent.name == "bases":
            continue
        ref, kind, layer = shard.stem.rsplit("-", 2)
        sets.append({"dataset": shard.parent.name, "task": "node", "reference_model": ref, "kind": kind,
                     "layer": int(layer[1:]), "key": f"{shard.parent.name}/{ref}/{kind}/{layer}",
                     "shard": str(shard.relative_to(root))})
    manifest = {"name": config["name"], "version": config["version"], "generator": {"config": config},
                "bases": bases, "sets": sets, "files": files}
    return Release(root, manifest, "provisional", VerificationMode.NO_CHECKS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=ROOT / "data_cards" / "v2")
    parser.add_argument("--config", type=Path, default=ROOT / "scripts" / "release_v2.yaml",
                        help="release config, read only when the release has no MANIFEST.json yet")
    parser.add_argument("--entries", nargs="+", default=["gcn-baseline"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--num-seeds", type=int, default=None,
                        help="run only the first N model seeds (the figure for 3 seeds is then projected, and "
                             "printed as a projection)")
    parser.add_argument("--only-seed", type=int, default=None, help="run only this model seed (e.g. the slowest)")
    parser.add_argument("--max-iterations", type=int, default=None, help="override the release's max_iterations")
    parser.add_argument("--patience", type=int, default=None, help="override the release's patience")
    parser.add_argument("--stages", nargs="+", default=None, help="override the release's stages")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    import dataclasses

    import torch

    from benchmark.evaluate.reverse import REVERSE_BUDGET_S, ReverseRun
    from benchmark.release.opened import Release
    from benchmark.submissions import validate_submission

    torch.set_num_threads(args.threads)
    provisional = not (args.release / "MANIFEST.json").is_file()
    release = provisional_release(args.release, args.config) if provisional else Release.open(args.release)
    protocol = release.reverse
    options = dict(protocol.metamer_options)
    if args.max_iterations is not None:
        options["max_iterations"] = args.max_iterations
    if args.patience is not None:
        options["patience"] = args.patience
    protocol = dataclasses.replace(protocol, metamer_options=options,
                                   stages=tuple(args.stages) if args.stages else protocol.stages)
    release.__dict__["reverse"] = protocol  # the cached property, overridden for this measurement only
    print(f"release {release.root} ({'provisional: no MANIFEST.json yet' if provisional else release.version}); "
          f"protocol {json.dumps(protocol.to_dict(), sort_keys=True)}; torch threads {args.threads}", flush=True)
    start = time.perf_counter()
    run = ReverseRun(release, num_bootstrap=args.bootstrap, use_cache=False, budget_s=None)
    setup = time.perf_counter() - start
    print(f"panel {run.panels and {d: [n for n, _ in p] for d, p in run.panels.items()}} loaded in {setup:.1f} s",
          flush=True)
    figures = {}
    for entry in args.entries:
        checked = validate_submission(ROOT / "submissions" / entry, datasets=list(protocol.datasets),
                                      dims={d: release.dims[d] for d in protocol.datasets})
        picked = [i for i, s in enumerate(checked.submission.seeds) if args.only_seed in (None, s)]
        picked = picked[:args.num_seeds] if args.num_seeds else picked
        if not picked:
            raise SystemExit(f"{entry} has no seed {args.only_seed}; its seeds: {checked.submission.seeds}")
        seeds = [checked.submission.seeds[i] for i in picked]
        t0 = time.perf_counter()
        block = run.run({d: [checked.models[d][i] for i in picked] for d in protocol.datasets}, seeds, entry,
                        progress=True)
        wall = time.perf_counter() - t0
        timing = block["timing"]
        figures[entry] = {"wall_s": round(wall, 1), "cpu_s": timing["cpu_s"], "seed_cpu_s": timing["seed_cpu_s"],
                          "seed_wall_s": timing["seed_compute_s"],
                          "stages": {f"{r['stage']} L{r['layer']}": {n: r["scores"][n]["mean"]
                                                                      for n in ("recognisability", "consistency",
                                                                                "metamer_validity")}
                                     for r in block["by_stage"]},
                          "iterations": [m["iterations"] for r in block["by_stage"] for m in r["metamers"]]}
        three = timing["cpu_s"] * 3 / len(seeds)
        figures[entry]["cpu_s_3_seeds"] = round(three, 1)
        figures[entry]["projected"] = len(seeds) != 3
        verdict = "within" if three <= REVERSE_BUDGET_S else "OVER"
        print(f"{entry}: {timing['cpu_s']:.1f} CPU s ({wall:.1f} s wall) for {len(seeds)} seed(s) "
              f"(CPU s per seed {', '.join(f'{s:.1f}' for s in timing['seed_cpu_s'])}); 3 seeds "
              f"{'projected ' if len(seeds) != 3 else ''}{three:.0f} CPU s - {verdict} the "
              f"{REVERSE_BUDGET_S:.0f} s budget", flush=True)
        for stage, scores in figures[entry]["stages"].items():
            print(f"  {stage}: " + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} n/a"
                                             for k, v in scores.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"protocol": protocol.to_dict(), "threads": args.threads,
                                         "entries": figures}, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
