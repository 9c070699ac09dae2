"""Release references against the zoo: test accuracy of every reference checkpoint of a release next
to the zoo's mean over 3 seeds (docs/zoo_accuracy.json), and whether it lies within 2 points (issue 11.3).

    python scripts/reference_accuracy.py --release data_cards/v2
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

TOLERANCE = 2.0  # percentage points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--release", default="data_cards/v2")
    ap.add_argument("--zoo", default="docs/zoo_accuracy.json")
    args = ap.parse_args()
    zoo = json.loads(Path(args.zoo).read_text())
    print("| dataset | reference | arch | layers | residual | test acc | zoo mean (3 seeds) | diff | within 2 pts |")
    print("|---|---|---|---|---|---|---|---|---|")
    for card_path in sorted(Path(args.release).glob("checkpoints/*/*/card.json")):
        card = json.loads(card_path.read_text())
        dataset, reference = card_path.parts[-3], card_path.parts[-2]
        cfg = card["config"]
        acc = 100 * card["metrics"]["test_acc"]
        ref = zoo.get(cfg["arch"], {}).get(dataset)
        diff = None if ref is None else acc - ref["mean"]
        ok = "-" if diff is None else ("yes" if diff >= -TOLERANCE else "no")
        zoo_mean = "-" if ref is None else f"{ref['mean']:.1f}"
        shown_diff = "-" if diff is None else f"{diff:+.1f}"
        print(f"| {dataset} | {reference} | {cfg['arch']} | {cfg.get('num_layers')} | {cfg.get('residual')} | {acc:.1f} | "
              f"{zoo_mean} | {shown_diff} | {ok} |")


if __name__ == "__main__":
    main()
