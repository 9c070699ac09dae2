"""Scoring a submission folder end to end: intake first, then the evaluator, then the results document.

    result = evaluate_submission("submissions/gcn-baseline", "data_cards/v1")
    write_results(result, results_path("submissions/gcn-baseline"))     # benchmark.evaluate

The order is the contract: the release is opened (its manifest read and schema-checked once, see
:class:`benchmark.release.opened.Release`), the submission passes every check of
:func:`benchmark.submissions.validate_submission` against the release's per-dataset facts, and only
then are the release's shards loaded and scored. A typo in a card costs a manifest read, not a
release load.

Why a module of its own: it is the one place that joins submission intake
(:mod:`benchmark.submissions`) and scoring (:mod:`benchmark.evaluate`), so neither imports the other.
"""
from __future__ import annotations

import os
import time

from benchmark.devices import check_device
from benchmark.errors import UserError
from benchmark.evaluate import Evaluator, results_document
from benchmark.evaluate.reverse import REVERSE_BUDGET_S
from benchmark.metrics.scores import DEFAULT_BOOTSTRAP, check_bootstrap
from benchmark.release.opened import Release
from benchmark.sanity import CHECKS
from benchmark.submissions import validate_submission


def evaluate_submission(entry_dir: str | os.PathLike, release_dir: Release | str | os.PathLike,
                        num_bootstrap: int = DEFAULT_BOOTSTRAP, device: str = "cpu", progress: bool = False,
                        evaluator: Evaluator | None = None, reverse: bool = True,
                        reverse_budget_s: float | None = REVERSE_BUDGET_S, reverse_cache: bool = True) -> dict:
    """Validate ``entry_dir`` (every check of ``validate``), score it on the release, return the results document.

    ``evaluator``: an evaluator already built on the release (scoring several entries; then
    ``release_dir`` and ``num_bootstrap`` are its). Both directions run on a release whose manifest
    states a reverse protocol (v2): the forward scores, then the reverse direction
    (:mod:`benchmark.evaluate.reverse`, the results' ``reverse`` block) unless ``reverse=False``;
    ``reverse_budget_s`` (None: measured, not enforced) and ``reverse_cache`` (finished seeds kept
    and reused; off for ``--reproduce``) are its knobs. The document matches
    ``benchmark/schemas/result.schema.json``; apart from ``wall_s`` the same inputs give the same
    bytes on one CPU kernel family, and scores within ``benchmark.reproduce.SCORE_ATOL`` on another
    CPU (``benchmark.reproduce`` compares them).
    """
    start = time.perf_counter()
    check_device(device)  # before the release is opened
    if evaluator is None:
        check_bootstrap(num_bootstrap)
        release = Release.open(release_dir)
        datasets, dims = release.datasets, release.dims  # the manifest's facts: no shard is read
    else:
        if evaluator.release_info is None:
            raise UserError("the evaluator has no release identity (name, version, manifest hash) to bind scores to")
        release = evaluator.release
        datasets, dims = evaluator.datasets, evaluator.dims
    checked = validate_submission(entry_dir, datasets=datasets, dims=dims, device=device, references=release)
    if evaluator is None:
        evaluator = Evaluator(release, num_bootstrap=num_bootstrap)
    sub = checked.submission
    card = sub.card
    program = getattr(sub, "format", None) is not None  # exported programs (benchmark/programs.py)
    if program:
        scores = evaluator.eval_programs(checked.models, sub.seeds, sub.architecture, device=device, progress=progress)
    else:
        scores = evaluator.eval(checked.models, seeds=sub.seeds, device=device, progress=progress, label=sub.entry)
    described = ({"format": sub.format, "stages": sub.stages} if program
                 else {"config": card["architecture"]["config"]})
    submission = {
        "name": card["name"], "authors": list(card["authors"]), "architecture": sub.architecture,
        **described, "num_parameters": card["num_parameters"], "seeds": sub.seeds,
        "tier": card["tier"], "license": card["license"], "paper_url": card["paper_url"],
        "code_url": card["code_url"], "submission_sha256": sub.card_sha256,
        "weights_sha256": checked.weights_sha256,
        # The red-flag checks every dataset and seed passed at intake (benchmark.sanity; a failure refuses).
        "red_flags": {"checks": list(CHECKS), "passed": all(flag["passed"] for seeds in checked.red_flags.values()
                                                             for flags in seeds.values() for flag in flags)
                      and sorted(checked.red_flags) == sorted(checked.models)},
    }
    extra = {}
    if reverse and release is not None and release.reverse is not None:
        from benchmark.evaluate.reverse import ReverseRun

        run = ReverseRun(release, num_bootstrap=evaluator.num_bootstrap, bootstrap_seed=evaluator.bootstrap_seed,
                         use_cache=reverse_cache, budget_s=reverse_budget_s, device=device)
        models = {d: checked.models[d] for d in release.reverse.datasets if d in checked.models}
        extra["reverse"] = run.run(models, sub.seeds, sub.entry, progress=progress)
    return results_document(sub.entry, submission, evaluator, scores, start, **extra)
