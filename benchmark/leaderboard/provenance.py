"""Provenance of results files: a results file ranks only if evaluating a submission produced it.

``leaderboard`` reads ``submissions/results/<entry>.json``; a file written by hand (or edited after
scoring) must not rank. Each file is tied back to what produced it:

- its release is one this package pins (:mod:`benchmark.release.known`), and its accuracy-floor
  facts equal the pinned ones (so editing ``reference_best`` cannot move an entry past the floor);
- ``submissions/<entry>/`` exists (a real folder, not a symlink) and its ``submission.json`` and
  every weights file hash to what the results file recorded at scoring time; for a prediction-only
  results file (``prediction_only: true``), ``submissions/<entry>/predictions.safetensors`` hashes to
  the recorded ``submission.predictions_sha256``.

Whether the *scores* follow from those inputs is checked by re-scoring
(``metamer-bench evaluate ENTRY --reproduce`` in CI): provenance is the cheap part that runs
on every ``leaderboard`` call, re-scoring the costly part that CI runs.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from benchmark.errors import IntegrityError
from benchmark.files import read_json, sha256_file
from benchmark.release.known import KNOWN_RELEASES, known_release

# reference_best is rounded to 6 decimals in results files.
_FACT_TOLERANCE = 1e-6


def provenance_problems(result: dict, source: str, submissions_dir: str | os.PathLike) -> list[str]:
    """Why ``result`` (a parsed results file named ``source``) may not rank; empty when it may."""
    from benchmark.errors import UserError
    from benchmark.submission_card import SUBMISSION_FILE, read_submission

    problems = []
    rel = result.get("release", {})
    pinned = known_release(rel.get("name"), rel.get("version"), rel.get("manifest_sha256"))
    if pinned is None:
        known = ", ".join(f"{r.name} {r.version} ({r.manifest_sha256[:12]})" for r in KNOWN_RELEASES)
        problems.append(f"release {rel.get('name')} {rel.get('version')} with manifest "
                        f"{str(rel.get('manifest_sha256'))[:12]} is not a release this package knows ({known})")
    else:
        floor = result.get("accuracy_floor", {})
        if sorted(floor) != sorted(pinned.reference_best):
            problems.append(f"accuracy_floor covers {sorted(floor)}, the release scores {sorted(pinned.reference_best)}")
        for dataset, best in sorted(pinned.reference_best.items()):
            got = floor.get(dataset, {}).get("reference_best")
            if isinstance(got, (int, float)) and not math.isclose(got, best, abs_tol=_FACT_TOLERANCE):
                problems.append(f"accuracy_floor.{dataset}.reference_best is {got}; the release's is {best}")

    entry = result.get("entry")
    if f"{entry}.json" != Path(source).name:
        problems.append(f"entry {entry!r} does not match the file name")
        return problems
    folder = Path(submissions_dir) / str(entry)
    if folder.is_symlink() or not folder.is_dir():
        problems.append(f"no submission folder {folder} produced it (a results file ranks only beside its submission)")
        return problems
    sub = result.get("submission", {})
    if result.get("prediction_only") is True:
        return problems + _prediction_problems(folder, sub)
    card_sha = sha256_file(folder / SUBMISSION_FILE) if (folder / SUBMISSION_FILE).is_file() else None
    if card_sha != sub.get("submission_sha256"):
        problems.append(f"{folder / SUBMISSION_FILE} has SHA-256 {card_sha}, the results were scored from "
                        f"{sub.get('submission_sha256')}: re-run `metamer-bench evaluate {folder}`")
        return problems
    try:
        card = read_submission(folder)
    except UserError as err:
        return problems + [f"{folder}: {str(err).splitlines()[0]}"]
    recorded = sub.get("weights_sha256", {})
    for dataset in sorted(recorded):
        for seed, want in sorted(recorded[dataset].items()):
            try:
                path = card.weights_path(dataset, int(seed))
            except (KeyError, ValueError):
                problems.append(f"submission.weights_sha256.{dataset}.{seed}: the card has no such weights")
                continue
            got = sha256_file(path) if path.is_file() else "missing"
            if got != want:
                problems.append(f"{path}: SHA-256 {got[:12]}, scored as {want[:12]}")
    return problems


def _prediction_problems(folder: Path, sub: dict) -> list[str]:
    """A prediction-only results file ranks beside the predictions file it was scored from."""
    from benchmark.predictions import PREDICTIONS_FILE

    path = folder / PREDICTIONS_FILE
    if path.is_symlink() or not path.is_file():
        return [f"prediction-only results need {path}, the predictions file they were scored from"]
    got = sha256_file(path)
    if got != sub.get("predictions_sha256"):
        return [f"{path}: SHA-256 {got[:12]}, scored as {str(sub.get('predictions_sha256'))[:12]}: re-run "
                f"`metamer-bench score-predictions {path} --name {folder.name}`"]
    return []


def check_provenance(results_dir: str | os.PathLike, submissions_dir: str | os.PathLike | None = None) -> None:
    """Raise :class:`IntegrityError` listing every results file in ``results_dir`` that may not rank.

    ``submissions_dir`` defaults to the results folder's parent (``submissions/``).
    """
    results_dir = Path(results_dir)
    submissions_dir = Path(submissions_dir) if submissions_dir is not None else results_dir.parent
    problems = []
    for path in sorted(results_dir.glob("*.json")):
        problems += [f"{path.name}: {p}" for p in provenance_problems(read_json(path), path.name, submissions_dir)]
    if problems:
        raise IntegrityError(f"{len(problems)} results problem(s); these files were not produced by scoring a "
                             "submission of a known release and may not rank:\n  " + "\n  ".join(problems))
