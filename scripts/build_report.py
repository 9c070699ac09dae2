"""Progress, cost and quality of a (possibly partial) release build, from its ``.build/state.json``.

Prints the sets built and left, total and per-dataset wall time, the slowest sets, and per set the
stage, validity of metamers / near / far twins, convergence (best iteration of iterations run) and
the controls verdict (issue 11.8: "report total CPU time and the slowest sets").

    python scripts/build_report.py --config scripts/release_v2.yaml --release data_cards/v2
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from benchmark.release.build import ReleaseBuilder, ReleaseConfig
from benchmark.release.card import set_verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="scripts/release_v2.yaml")
    ap.add_argument("--release", default="data_cards/v2")
    ap.add_argument("--slowest", type=int, default=5)
    args = ap.parse_args()
    builder = ReleaseBuilder(ReleaseConfig.from_yaml(args.config), Path(args.release), progress=False)
    units = builder.units()
    steps = builder.state["steps"]
    done = [u for u in units if u.state_key in steps]
    print(f"sets built: {len(done)} of {len(units)}")
    wall = defaultdict(float)
    for key, step in steps.items():
        wall[key.split("/")[1]] += step.get("wall_s", 0.0) or 0.0
    total = sum(wall.values())
    print(f"wall time of finished steps (checkpoints + sets): {total / 60:.1f} min; by dataset: "
          + ", ".join(f"{d} {s / 60:.1f} min" for d, s in sorted(wall.items()) if s))
    timed = sorted(((steps[u.state_key]["wall_s"], u.state_key) for u in done), reverse=True)
    print("slowest sets: " + "; ".join(f"{k[4:]} {w:.0f} s" for w, k in timed[: args.slowest]))
    print()
    print("| set | stage | validity | near | far | best it. / its | controls | ranked | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for u in done:
        step = steps[u.state_key]
        per_seed = list(step.get("summary", {}).values())
        s = per_seed[0] if per_seed else {}
        verdict = set_verdict(step.get("summary", {}))
        print(f"| {u.state_key[4:]} | {step.get('stage')} | {s.get('validity_rate')} | {s.get('near_validity_rate')} | "
              f"{s.get('far_validity_rate')} | {s.get('best_iteration')} / {s.get('iterations')} | {verdict['controls']} | "
              f"{'yes' if verdict['ranked'] else 'no: ' + verdict['reason']} | {step.get('wall_s')} |")
    left = [u.state_key[4:] for u in units if u.state_key not in steps]
    if left:
        print(f"\nnext: {left[0]} ({len(left)} left)")


if __name__ == "__main__":
    main()
