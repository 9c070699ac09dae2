"""The leaderboard's ``tier``, derived from what was checked, never taken from the submitter's card.

``re-run`` means: the project's own recipe retrained every weights file the results were scored
from, and each retrained model matches the submitted one within
:data:`benchmark.reproduce.WEIGHT_ATOL` (max abs difference per tensor). Anything else, including
a card that says ``re-run``, is ``self-reported``. The card's and the results file's ``tier`` fields
are the submitter's claim and are not shown.

The recipe (what :func:`retrain_submission` runs, the same calls as ``scripts/train_baselines.py``):
for each dataset and seed of the card, :func:`benchmark.training.train_model` on the dataset's
public split with the registry's training defaults for the architecture and the card's model
config (``architecture.config`` plus ``datasets.<name>.config``), from that seed; for the datasets
listed in ``training.adversarial_datasets``, adversarial training on node features with
``training.adversarial`` (:class:`benchmark.adversarial.AdversarialConfig`). A submission trained
another way does not match, and stays ``self-reported``.

The outcome is a *rerun record*, ``submissions/reruns/<entry>.json`` (``metamer-bench rerun
ENTRY`` writes it): the card's SHA-256, and per dataset and seed the submitted file's SHA-256, the
largest weight difference and whether it matched. :func:`derived_tier` gives ``re-run`` only when a
record exists, matched everywhere, and is tied to the very card and weights hashes the results file
was scored from (so retrained-and-replaced weights fall back to ``self-reported``). A record is
as forgeable as any file in a pull request: CI re-runs every record a change adds or modifies
(``metamer-bench rerun ENTRY --check``, ``.ci/run``) and fails when it does not hold.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from benchmark.errors import CheckFailed, UserError
from benchmark.files import atomic_write_json, read_json
from benchmark.reproduce import WEIGHT_ATOL

RERUNS_DIR = "reruns"  # submissions/reruns/<entry>.json, beside submissions/results/
TIERS = ("self-reported", "re-run")
RECIPE = ("benchmark.training.train_model with the registry's training defaults and the card's model config, "
          "from each seed; benchmark.adversarial.make_perturbation(training.adversarial) on "
          "training.adversarial_datasets")
MAX_RECORD_BYTES = 1 << 20


def rerun_path(entry_dir: str | os.PathLike) -> Path:
    """``submissions/<entry>`` -> ``submissions/reruns/<entry>.json``."""
    entry_dir = Path(entry_dir).resolve()
    return entry_dir.parent / RERUNS_DIR / f"{entry_dir.name}.json"


def _adversarial_config(card: dict, dataset: str):
    """The card's adversarial training config for ``dataset``, or None when it trained plainly."""
    from benchmark.adversarial import AdversarialConfig

    training = card["training"]
    listed = training.get("adversarial_datasets") or []
    if not isinstance(listed, list) or dataset not in listed:
        return None
    spec = training.get("adversarial")
    if not isinstance(spec, dict):
        raise UserError(f"training.adversarial_datasets lists {dataset} but training.adversarial is {spec!r}; "
                        f"expected an object with fields {sorted(AdversarialConfig().to_dict())}")
    unknown = sorted(set(spec) - set(AdversarialConfig().to_dict()))
    if unknown:
        raise UserError(f"training.adversarial: unknown field(s) {unknown}; valid: {sorted(AdversarialConfig().to_dict())}")
    return AdversarialConfig(**spec)


def _max_abs_diff(submitted: dict, retrained: dict) -> float:
    """Largest |submitted - retrained| over every tensor; inf when names or shapes differ."""
    if submitted.keys() != retrained.keys():
        return float("inf")
    worst = 0.0
    for name, want in submitted.items():
        got = retrained[name]
        if want.shape != got.shape:
            return float("inf")
        if want.numel():
            worst = max(worst, float((want.float() - got.float()).abs().max()))
    return worst


def retrain_submission(entry_dir: str | os.PathLike, device: str = "cpu", progress: bool = False) -> dict:
    """Retrain every weights file of ``entry_dir`` with the project's recipe (module docstring); the rerun record.

    The submission passes every intake check first (``validate_submission``: budget, header, hashes),
    so a hostile card cannot make the retraining allocate or run beyond the stated budget.
    """
    import torch
    from tqdm.auto import tqdm

    from benchmark.adversarial import make_perturbation
    from benchmark.graphs import load_dataset
    from benchmark.submissions import validate_submission
    from benchmark.training import train_model
    from benchmark.versions import library_versions

    start = time.perf_counter()
    checked = validate_submission(entry_dir, device="cpu")
    sub = checked.submission
    runs: dict[str, dict[str, dict]] = {}
    jobs = [(name, i, seed) for name in sorted(checked.models) for i, seed in enumerate(sub.seeds)]
    for name, i, seed in tqdm(jobs, desc=f"rerun {sub.entry}", disable=not progress):
        dataset = load_dataset(name)
        submitted = checked.models[name][i]
        adversarial = _adversarial_config(sub.card, name)
        perturb = make_perturbation(dataset, adversarial) if adversarial is not None and dataset.task == "node" else None
        model, metrics = train_model(dataset, submitted.config, seed=seed, perturb=perturb, device=device)
        worst = _max_abs_diff(submitted.state_dict(), model.state_dict())
        runs.setdefault(name, {})[str(seed)] = {
            "weights_sha256": checked.weights_sha256[name][str(seed)],
            "max_abs_diff": worst if worst != float("inf") else None,
            "matched": worst <= WEIGHT_ATOL, "epochs": metrics["epochs"]}
    return {
        "entry": sub.entry, "submission_sha256": sub.card_sha256, "recipe": RECIPE, "weight_atol": WEIGHT_ATOL,
        "matched": all(r["matched"] for by_seed in runs.values() for r in by_seed.values()), "runs": runs,
        "device": device, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "library_versions": library_versions(), "wall_s": round(time.perf_counter() - start, 2),
    }


def mismatches(record: dict) -> list[str]:
    """One line per run of ``record`` that did not match, naming dataset, seed and the difference."""
    out = []
    for name, by_seed in sorted(record["runs"].items()):
        for seed, run in sorted(by_seed.items(), key=lambda kv: int(kv[0])):
            if not run["matched"]:
                diff = "names or shapes differ" if run["max_abs_diff"] is None else f"max abs difference {run['max_abs_diff']:.3g}"
                out.append(f"datasets.{name}.weights.{seed}: retrained weights differ from the submitted ones "
                           f"({diff} > {record['weight_atol']:g})")
    return out


def write_record(record: dict, path: str | os.PathLike) -> Path:
    """Write a rerun record atomically as canonical JSON."""
    path = Path(path)
    atomic_write_json(path, record)
    return path


def check_record(fresh: dict, path: str | os.PathLike) -> list[str]:
    """Why the record at ``path`` does not hold, given a ``fresh`` retraining; empty when it holds.

    It holds when it names the same card and weights hashes as now and claims a match only where
    the fresh retraining matches too (a record may always claim less than it could).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no rerun record to check at {path}; run `metamer-bench rerun {fresh['entry']}` to write one")
    recorded = read_json(path, max_bytes=MAX_RECORD_BYTES)
    problems = []
    if recorded.get("entry") != fresh["entry"]:
        problems.append(f"entry is {recorded.get('entry')!r}, the folder is {fresh['entry']!r}")
    if recorded.get("submission_sha256") != fresh["submission_sha256"]:
        problems.append(f"submission_sha256 is {recorded.get('submission_sha256')}, the card's is "
                        f"{fresh['submission_sha256']}")
    runs = recorded.get("runs") if isinstance(recorded.get("runs"), dict) else {}
    for name, by_seed in sorted(fresh["runs"].items()):
        for seed, run in sorted(by_seed.items(), key=lambda kv: int(kv[0])):
            got = runs.get(name, {}).get(seed) if isinstance(runs.get(name), dict) else None
            where = f"runs.{name}.{seed}"
            if not isinstance(got, dict):
                problems.append(f"{where}: missing from the record")
                continue
            if got.get("weights_sha256") != run["weights_sha256"]:
                problems.append(f"{where}.weights_sha256 is {str(got.get('weights_sha256'))[:12]}, the file's is "
                                f"{run['weights_sha256'][:12]}")
            if got.get("matched") is True and not run["matched"]:
                diff = run["max_abs_diff"]
                problems.append(f"{where}: the record claims a match, retraining now differs by "
                                f"{'names or shapes' if diff is None else f'{diff:.3g}'} (> {WEIGHT_ATOL:g})")
    if recorded.get("matched") is True and not fresh["matched"]:
        problems.append("matched: the record claims every run matched; retraining now does not")
    return problems


def derived_tier(result: dict, submissions_dir: str | os.PathLike) -> str:
    """The tier the leaderboard shows for the parsed results file ``result`` (module docstring)."""
    return "re-run" if not tier_problems(result, submissions_dir) else "self-reported"


def tier_problems(result: dict, submissions_dir: str | os.PathLike) -> list[str]:
    """Why ``result`` is not ``re-run``; empty when a matching rerun record ties to its very hashes."""
    entry = result.get("entry")
    sub = result.get("submission") if isinstance(result.get("submission"), dict) else {}
    path = Path(submissions_dir) / RERUNS_DIR / f"{entry}.json"
    if not isinstance(entry, str) or path.is_symlink() or not path.is_file():
        return [f"no rerun record {path}"]
    try:
        record = read_json(path, max_bytes=MAX_RECORD_BYTES)
    except (UserError, ValueError) as err:
        return [f"{path}: {err}"]
    if not isinstance(record, dict) or record.get("entry") != entry:
        return [f"{path}: not a rerun record of entry {entry!r}"]
    problems = []
    if record.get("submission_sha256") != sub.get("submission_sha256"):
        problems.append(f"{path}: retrained a card with SHA-256 {str(record.get('submission_sha256'))[:12]}, the "
                        f"results were scored from {str(sub.get('submission_sha256'))[:12]}")
    if record.get("matched") is not True:
        problems.append(f"{path}: the retrained weights did not match")
    runs = record.get("runs") if isinstance(record.get("runs"), dict) else {}
    scored = sub.get("weights_sha256") if isinstance(sub.get("weights_sha256"), dict) else {}
    if not scored:
        problems.append("the results file records no weights hashes")
    for name, by_seed in sorted(scored.items()):
        for seed, sha in sorted(by_seed.items()):
            run = runs.get(name, {}).get(seed) if isinstance(runs.get(name), dict) else None
            if not isinstance(run, dict) or run.get("weights_sha256") != sha or run.get("matched") is not True:
                problems.append(f"{path}: no matching retraining of {name} seed {seed} ({str(sha)[:12]})")
            elif not isinstance(run.get("max_abs_diff"), (int, float)) or not run["max_abs_diff"] <= WEIGHT_ATOL:
                problems.append(f"{path}: {name} seed {seed} differs by {run.get('max_abs_diff')!r} > {WEIGHT_ATOL:g}")
    return problems


def rerun_or_fail(entry_dir: str | os.PathLike, out: str | os.PathLike | None = None, check: bool = False,
                  device: str = "cpu", progress: bool = False) -> tuple[dict, Path]:
    """Retrain ``entry_dir``; write its record to ``out`` (default :func:`rerun_path`), or with
    ``check`` compare with the record there and write nothing. Raises :class:`CheckFailed` (exit 1)
    listing what did not match (the record is written first, so it says ``self-reported``)."""
    path = Path(out) if out is not None else rerun_path(entry_dir)
    fresh = retrain_submission(entry_dir, device=device, progress=progress)
    if check:
        problems = check_record(fresh, path)
        if problems:
            raise CheckFailed(f"{path} does not hold ({len(problems)} problem(s)):\n  " + "\n  ".join(problems))
        return fresh, path
    write_record(fresh, path)
    bad = mismatches(fresh)
    if bad:
        raise CheckFailed(f"{fresh['entry']}: {len(bad)} of {sum(len(s) for s in fresh['runs'].values())} retrained "
                          f"models differ from the submitted weights, so its tier is self-reported (record written "
                          f"to {path}):\n  " + "\n  ".join(bad))
    return fresh, path
