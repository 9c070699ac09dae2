"""Train the leaderboard's baseline entries on every dataset of a release, 3 seeds each.

Entries: every zoo architecture with its registry defaults (``<arch>-baseline``) and the paper's
mitigations on GCN -- ELU activation, residual connections, adversarial training on node
features (``benchmark.adversarial``) -- alone and combined (``gcn-elu``, ..., ``gcn-elu-residual-adv``).

Resumable: each run is staged as a checkpoint (``model.safetensors`` + ``card.json``) in
``runs/baselines/<entry>/<dataset>/seed-<n>/`` and is not redone; runs already in a checked-in
submission folder (hash-checked) count as finished too, so a fresh clone resumes where git left
off. The submission folder ``submissions/<entry>/`` (``submission.json`` +
``<dataset>/seed-<n>.safetensors``) is (re)written with every dataset whose seeds are all done;
until every dataset of the release is there it is a partial submission, not yet scored.

    python scripts/train_baselines.py [--release data_cards/v1 | --datasets Cora ...]
        [--entries gcn-baseline gcn-adv ...] [--seeds 0 1 2] [--workers N] [--device cuda]
        [--package-only]

``--workers N`` trains N runs at once in separate processes (one torch thread each on the CPU).
"""
from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.adversarial import AdversarialConfig, make_perturbation  # noqa: E402
from benchmark.checkpoints import CARD_NAME, WEIGHTS_NAME, save_checkpoint  # noqa: E402
from benchmark.files import read_json, sha256_file  # noqa: E402
from benchmark.graphs import get_spec, load_dataset  # noqa: E402
from benchmark.models import ModelConfig, build_model, count_parameters, default_config, model_names  # noqa: E402
from benchmark.models.config import DATASET_FIELDS  # noqa: E402
from benchmark.release.opened import Release  # noqa: E402
from benchmark.submission_card import MIN_SEEDS  # noqa: E402
from benchmark.submissions import write_submission  # noqa: E402
from benchmark.training import train_model  # noqa: E402

STAGING = REPO / "runs" / "baselines"
SUBMISSIONS = REPO / "submissions"
AUTHORS = ["metamer-bench maintainers"]
ADVERSARIAL = AdversarialConfig()  # flip 10% of a node's words (binary features) / L-inf 0.1 std otherwise


@dataclass(frozen=True)
class Entry:
    """One submission: an architecture, config overrides and whether training is adversarial."""

    name: str
    arch: str
    overrides: dict = field(default_factory=dict)
    adversarial: bool = False
    description: str = ""


def baseline_entries() -> list[Entry]:
    """Every zoo architecture, then the GCN mitigations and all their combinations."""
    entries = [Entry(f"{arch}-baseline", arch, description=f"Registry-default {arch} (zoo reference recipe).")
               for arch in model_names()]
    mitigations = {"elu": {"activation": "elu"}, "residual": {"residual": True}}
    for use_elu in (False, True):
        for use_res in (False, True):
            for use_adv in (False, True):
                parts = [p for p, on in (("elu", use_elu), ("residual", use_res), ("adv", use_adv)) if on]
                if not parts:
                    continue
                overrides = {**(mitigations["elu"] if use_elu else {}), **(mitigations["residual"] if use_res else {})}
                what = {"elu": "ELU activation", "residual": "residual connections",
                        "adv": "adversarial training on node features"}
                entries.append(Entry("gcn-" + "-".join(parts), "gcn", overrides, use_adv,
                                     "GCN with " + ", ".join(what[p] for p in parts) + "."))
    return entries


def release_datasets(release: Path) -> list[str]:
    """Datasets a frozen release scores (:attr:`benchmark.release.opened.Release.datasets`)."""
    return Release.open(release).datasets


def stage_dir(entry: Entry, dataset: str, seed: int) -> Path:
    return STAGING / entry.name / dataset / f"seed-{seed}"


def entry_config(entry: Entry, dataset: str) -> dict:
    """The config fields (minus FIXED_CONFIG) the entry trains with on ``dataset`` today.

    A staged or checked-in run with other fields (a registry default changed since) is stale:
    it is retrained, never packaged under the current config.
    """
    config = default_config(entry.arch, 1, 1, task=get_spec(dataset).task, **entry.overrides).to_dict()
    return {k: v for k, v in config.items() if k not in FIXED_CONFIG}


def _staged_current(entry: Entry, dataset: str, seed: int) -> bool:
    card = stage_dir(entry, dataset, seed) / CARD_NAME
    if not card.is_file():
        return False
    config = read_json(card)["config"]
    return {k: v for k, v in config.items() if k not in FIXED_CONFIG} == entry_config(entry, dataset)


def train_one(entry: Entry, dataset_name: str, seed: int, device: str = "cpu") -> str:
    """Train one run and stage it; a finished run (card present, today's config) is skipped. Returns a log line."""
    out = stage_dir(entry, dataset_name, seed)
    if _staged_current(entry, dataset_name, seed):
        return f"{entry.name} {dataset_name} s{seed}: staged already"
    dataset = load_dataset(dataset_name)
    config = default_config(entry.arch, dataset.num_features, dataset.num_classes, task=dataset.task,
                            **entry.overrides)
    perturb = None
    # benchmark.training's perturbation hook covers node tasks only; on a graph-classification set
    # an adversarial entry trains plainly and its card says so (training.adversarial_datasets).
    adversarial = entry.adversarial and dataset.task == "node"
    if adversarial:
        perturb = make_perturbation(dataset, ADVERSARIAL)
    model, metrics = train_model(dataset, config, seed=seed, perturb=perturb, device=device)
    card = {"entry": entry.name, "dataset": dataset_name, "seed": seed, "metrics": metrics,
            "adversarial": ADVERSARIAL.to_dict() if adversarial else None}
    save_checkpoint(model, out, card)
    return (f"{entry.name} {dataset_name} s{seed}: test_acc {metrics['test_acc']:.3f} "
            f"({metrics['epochs']} epochs, {metrics['wall_s']:.0f} s, {metrics['device']})")


def _worker_init() -> None:
    torch.set_num_threads(1)  # N workers share the cores; one BLAS thread each avoids oversubscription


def train_all(jobs: list[tuple[Entry, str, int]], workers: int, device: str) -> None:
    """Train ``jobs`` (entry, dataset, seed), ``workers`` at a time; finished runs are skipped."""
    jobs = [job for job in jobs if not finished(*job)]
    if not jobs:
        return
    for name in sorted({dataset for _, dataset, _ in jobs}):
        load_dataset(name)  # process each raw dataset once, before workers race on the cache
    bar = tqdm(total=len(jobs), desc="runs")
    if workers <= 1:
        for job in jobs:
            bar.write(train_one(*job, device=device))
            bar.update()
        return
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init) as pool:
        futures = [pool.submit(train_one, *job, device=device) for job in jobs]
        for future in as_completed(futures):
            bar.write(future.result())
            bar.update()


FIXED_CONFIG = ("arch", *DATASET_FIELDS)  # set per dataset and entry, not part of the shared config


@dataclass
class DatasetBlock:
    """One dataset's finished runs of an entry: its card block plus what the card header needs."""

    block: dict  # submission.json datasets.<name> without its weights: test_acc (config added by package)
    weights: dict  # {seed: safetensors file}: staged, or already in the submission folder
    config: dict  # full ModelConfig fields minus FIXED_CONFIG
    task: str  # "node" or "graph"
    num_params: int
    adversarial: bool
    devices: set[str]


def staged_block(entry: Entry, dataset: str, seeds: list[int]) -> DatasetBlock | None:
    """The dataset's runs from staging (copied into the submission folder when packaged); None unless
    every seed is staged."""
    if not all(_staged_current(entry, dataset, s) for s in seeds):
        return None
    cards = [read_json(stage_dir(entry, dataset, s) / CARD_NAME) for s in seeds]
    weights = {seed: stage_dir(entry, dataset, seed) / WEIGHTS_NAME for seed in seeds}
    return DatasetBlock({"test_acc": [round(c["metrics"]["test_acc"], 4) for c in cards]}, weights,
                        {k: v for k, v in cards[0]["config"].items() if k not in FIXED_CONFIG},
                        cards[0]["config"]["task"], cards[0]["metrics"]["num_params"], bool(cards[0].get("adversarial")),
                        {c["metrics"].get("device", "cpu") for c in cards})


def _checked_in_weights(entry: Entry, dataset: str, seeds: list[int]) -> tuple[dict, dict] | None:
    """``(card, {seed: weights item})`` for ``seeds`` of ``dataset`` in ``submissions/<entry>/``;
    None unless the card lists every seed and each file matches its SHA-256."""
    card_path = SUBMISSIONS / entry.name / "submission.json"
    if not card_path.is_file():
        return None
    card = read_json(card_path)
    block = card.get("datasets", {}).get(dataset)
    if block is None or not {str(s) for s in seeds} <= set(block["weights"]):
        return None
    if {**card["architecture"]["config"], **block.get("config", {})} != entry_config(entry, dataset):
        return None
    weights = {str(s): block["weights"][str(s)] for s in seeds}
    for item in weights.values():
        path = card_path.parent / item["path"]
        if not path.is_file() or sha256_file(path) != item["sha256"]:
            return None
    return card, weights


def checked_in_block(entry: Entry, dataset: str, seeds: list[int]) -> DatasetBlock | None:
    """The dataset's runs already in ``submissions/<entry>/`` (so a later session resumes from git)."""
    found = _checked_in_weights(entry, dataset, seeds)
    if found is None:
        return None
    card, weights = found
    card_path = SUBMISSIONS / entry.name / "submission.json"
    block = card["datasets"][dataset]
    test_acc = [block["test_acc"][card["seeds"].index(s)] for s in seeds]  # aligned with the card's seeds
    config = {**card["architecture"]["config"], **block.get("config", {})}
    data = load_dataset(dataset)
    model = build_model(ModelConfig.from_dict({**config, "arch": entry.arch, "in_channels": data.num_features,
                                               "out_channels": data.num_classes, "task": data.task}))
    training = card.get("training", {})
    paths = {int(seed): card_path.parent / item["path"] for seed, item in weights.items()}
    return DatasetBlock({"test_acc": test_acc}, paths, config, data.task,
                        count_parameters(model), dataset in training.get("adversarial_datasets", []),
                        set(training.get("devices", ["cpu"])))


def finished(entry: Entry, dataset: str, seed: int) -> bool:
    """Staged, or checked in with a matching hash, under today's config (no model is built: this
    runs for every job)."""
    return (_staged_current(entry, dataset, seed)
            or _checked_in_weights(entry, dataset, [seed]) is not None)


def package(entry: Entry, datasets: list[str], seeds: list[int]) -> tuple[Path, list[str]] | None:
    """(Re)write ``submissions/<entry>/`` from staged and checked-in runs.

    A dataset goes in once all its seeds are finished; returns ``(folder, missing datasets)``, or
    None when no dataset is finished yet. An entry with missing datasets is a partial submission:
    it passes intake but is not scored until every dataset of the release is there.
    """
    blocks = {}
    for dataset in datasets:
        found = staged_block(entry, dataset, seeds) or checked_in_block(entry, dataset, seeds)
        if found is not None:
            blocks[dataset] = found
    if not blocks:
        return None
    # Node and graph sets differ in their defaults (dropout, readout): the architecture config is
    # the first dataset's and every other dataset states where it differs (datasets.<name>.config).
    names = sorted(blocks, key=lambda d: (blocks[d].task != "node", d))
    config = blocks[names[0]].config
    models = {}
    for dataset in sorted(blocks):
        models[dataset] = blocks[dataset].block
        differing = {k: v for k, v in blocks[dataset].config.items() if config.get(k) != v}
        if differing:
            models[dataset]["config"] = differing
    folder = SUBMISSIONS / entry.name
    submission = {
        "name": entry.name, "description": entry.description, "authors": AUTHORS, "paper_url": None,
        "code_url": None, "license": "MIT", "tier": "re-run",
        "architecture": {"name": entry.arch, "config": config},
        "training": {"data": "train split of each dataset's public split, no extra data",
                     "recipe": "scripts/train_baselines.py: benchmark.training.train_model with the registry's "
                               "training defaults (Adam, early stopping on validation accuracy)",
                     "config_overrides": entry.overrides,
                     "adversarial": ADVERSARIAL.to_dict() if entry.adversarial else None,
                     "adversarial_datasets": sorted(d for d, b in blocks.items() if b.adversarial),
                     "devices": sorted(set().union(*(b.devices for b in blocks.values())))},
        "seeds": seeds, "num_parameters": max(b.num_params for b in blocks.values()), "datasets": models,
    }
    write_submission(folder, submission, {d: blocks[d].weights for d in sorted(blocks)})
    return folder, [d for d in datasets if d not in blocks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=REPO / "data_cards" / "v1")
    parser.add_argument("--datasets", nargs="+", default=None, help="default: the release's datasets")
    parser.add_argument("--entries", nargs="+", default=None, help="default: every baseline entry")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the CI box has 2 shared cores)")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once, one process each")
    parser.add_argument("--device", default="cpu", help="cpu (byte-reproducible) or cuda")
    parser.add_argument("--package-only", action="store_true", help="only (re)write finished submissions")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    all_entries = {e.name: e for e in baseline_entries()}
    unknown = sorted(set(args.entries or []) - set(all_entries))
    if unknown:
        raise SystemExit(f"unknown entries {unknown}; valid: {', '.join(all_entries)}")
    entries = [all_entries[n] for n in args.entries] if args.entries else list(all_entries.values())
    datasets = args.datasets or release_datasets(args.release)
    if len(args.seeds) < MIN_SEEDS:
        raise SystemExit(f"a submission needs at least {MIN_SEEDS} seeds (DESIGN 4)")
    if not args.package_only:
        train_all([(e, d, s) for d in datasets for e in entries for s in args.seeds], args.workers, args.device)
    # Packaging covers the release's datasets even when training was limited to some of them:
    # package() rewrites submission.json, and a dataset left out there would drop from the card.
    packaged = datasets
    if args.datasets and (args.release / "MANIFEST.json").is_file():
        packaged = sorted(set(datasets) | set(release_datasets(args.release)))
    for entry in entries:
        written = package(entry, packaged, args.seeds)
        if written is not None:
            folder, missing = written
            print(f"submission written: {folder.relative_to(REPO)}" + (f" (partial: no {missing} yet)" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
