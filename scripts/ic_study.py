"""Issue 12.3 study: which invariance-consistency score gains nothing from errors on originals?

    python scripts/ic_study.py                       # every baseline under submissions/, release v1
    python scripts/ic_study.py --release data_cards/v1 --bootstrap 1000 --cache /tmp/ic-study

Scores every submission folder (a ``submission.json``) with the evaluator's own code
(``Evaluator.score_with_replicates``: the same predictions, outcomes and bootstrap as
``metamer-bench evaluate``) and prints, for each IC candidate of METRICS.md, a Markdown table:

* ``Spearman(clean)``: Spearman's rho between the candidate's aggregate mean and the aggregate
  clean accuracy, over all entries and over the GNN entries (architecture other than ``mlp``);
* ``GNN range``: max - min of the candidate over the GNN entries;
* ``separated``: GNN entry pairs whose paired-bootstrap 95% CI of the difference excludes 0, out of
  all pairs, and among the ``*-baseline`` architectures alone. Paired: one evaluator scores every
  entry, so every entry's replicate ``b`` uses the same unit draws (bootstrap seed and set key);
* ``MDE``: the median over GNN pairs of the minimum detectable effect at 5% two-sided and 80%
  power, ``(z_0.975 + z_0.8) x SE`` of the paired difference (a smaller true difference is missed
  more often than not), and the GNN range in units of that MDE.

``--cache DIR`` keeps each entry's aggregate means and replicates (``DIR/<entry>.pt``) so a rerun
skips the entries already scored with the same release, bootstrap and evaluator version.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.evaluate import EVALUATOR_VERSION, Evaluator  # noqa: E402
from benchmark.metrics.scores import MDE_FACTOR, paired_difference  # noqa: E402

CANDIDATES = ("invariance_consistency", "ic_correct", "ic_order", "ic_concordance", "ic_spearman")


def score_entry(evaluator: Evaluator, entry: Path, cache: Path | None) -> dict:
    """``{"arch", "mean": {score: float}, "boot": {score: [B] tensor}}`` of one submission folder."""
    from benchmark.submissions import validate_submission

    tag = (evaluator.release_info["manifest_sha256"], evaluator.num_bootstrap, EVALUATOR_VERSION)
    path = cache / f"{entry.name}.pt" if cache else None
    if path is not None and path.is_file():
        saved = torch.load(path, weights_only=True)
        if tuple(saved["tag"]) == (tag[0], tag[1], tag[2]):
            return saved
    checked = validate_submission(entry, datasets=evaluator.datasets, dims=evaluator.dims)
    sub = checked.submission
    probs = evaluator.predict(checked.models)
    doc, scored = evaluator.score_with_replicates(probs, sub.seeds, entry.name)
    names = ("clean_acc", *CANDIDATES)
    out = {"tag": list(tag), "arch": sub.architecture,
           "mean": {n: doc["aggregate"][n]["mean"] for n in names},
           "boot": {n: scored.aggregate_boot[n].clone() for n in names}}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(out, path)
    return out


def table(entries: dict[str, dict]) -> list[str]:
    gnn = [e for e, d in entries.items() if d["arch"] != "mlp"]
    baselines = [e for e in gnn if e.endswith("-baseline")]
    lines = [f"entries: {len(entries)} ({len(gnn)} GNN, {len(baselines)} GNN architectures' baselines); "
             f"MDE factor z_0.975 + z_0.8 = {MDE_FACTOR:.3f}",
             "",
             "| candidate | Spearman(clean), all | Spearman(clean), GNN | GNN range | separated GNN pairs "
             "| separated architecture pairs | median MDE | range / MDE |",
             "|---|---|---|---|---|---|---|---|"]
    clean = {e: d["mean"]["clean_acc"] for e, d in entries.items()}
    for name in CANDIDATES:
        mean = {e: d["mean"][name] for e, d in entries.items()}
        defined = [e for e in entries if mean[e] is not None]
        rho_all = spearmanr([mean[e] for e in defined], [clean[e] for e in defined]).statistic
        g = [e for e in gnn if mean[e] is not None]
        rho_gnn = spearmanr([mean[e] for e in g], [clean[e] for e in g]).statistic
        spread = max(mean[e] for e in g) - min(mean[e] for e in g)
        diffs = {}
        for a, b in itertools.combinations(g, 2):
            d = paired_difference(mean[a], entries[a]["boot"][name], mean[b], entries[b]["boot"][name])
            if d is not None:
                diffs[a, b] = d
        sep = sum(d.separated for d in diffs.values())
        arch_pairs = [p for p in diffs if p[0] in baselines and p[1] in baselines]
        sep_arch = sum(diffs[p].separated for p in arch_pairs)
        mde = statistics.median(d.mde for d in diffs.values())
        lines.append(f"| `{name}` | {rho_all:+.2f} | {rho_gnn:+.2f} | {spread:.4f} | {sep}/{len(diffs)} "
                     f"| {sep_arch}/{len(arch_pairs)} | {mde:.4f} | {spread / mde:.1f} |")
    lines += ["", "| entry | clean_acc | " + " | ".join(CANDIDATES) + " |",
              "|---|---|" + "---|" * len(CANDIDATES)]
    for e in sorted(entries, key=lambda e: -entries[e]["mean"]["clean_acc"]):
        cells = [f"{entries[e]['mean'][n]:.4f}" if entries[e]["mean"][n] is not None else "n/a" for n in CANDIDATES]
        lines.append(f"| {e} | {entries[e]['mean']['clean_acc']:.4f} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="data_cards/v1")
    parser.add_argument("--submissions", type=Path, default=REPO / "submissions")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--cache", type=Path, default=None, help="folder for per-entry replicates (resumable)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    evaluator = Evaluator(args.release, num_bootstrap=args.bootstrap)
    folders = sorted(p.parent for p in args.submissions.glob("*/submission.json"))
    if not folders:
        print(f"no submission folders under {args.submissions}", file=sys.stderr)
        return 1
    entries = {}
    for folder in folders:
        t0 = time.perf_counter()
        entries[folder.name] = score_entry(evaluator, folder, args.cache)
        print(f"  scored {folder.name} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    release = evaluator.release_info
    print(f"IC candidates on {release['name']} {release['version']} (manifest {release['manifest_sha256'][:8]}), "
          f"evaluator {EVALUATOR_VERSION}, {args.bootstrap} bootstrap replicates, "
          f"{time.perf_counter() - start:.0f} s")
    print("\n".join(table(entries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
