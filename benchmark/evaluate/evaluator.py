"""The evaluator: a thin :class:`Evaluator` that takes a model's outputs on a release and returns scores.

    evaluator = Evaluator("data_cards/v1")            # opens, checks and loads the release once
    scores = evaluator.eval([model_seed0, model_seed1, model_seed2], seeds=[0, 1, 2])
    scores = evaluator.eval_predictions({"type": "logits", "seeds": [0, 1, 2],
                                         "outputs": {record_id: tensor [3, n_outputs, C], ...}})
    evaluator.expected_input_schema                    # JSON Schema of the predictions input

OGB's ``Evaluator.eval`` is the model: outputs in, a scores document out. The jobs around it
live in their own modules of this package: which units are scored and how metamers are matched
with their twins (:mod:`~benchmark.evaluate.units`), the predictions contract
(:mod:`~benchmark.evaluate.contract`), running models on records
(:mod:`~benchmark.evaluate.inference`) and the results file (:mod:`~benchmark.evaluate.results`).
What stays here is the release's facts the scores need (datasets, dimensions, the accuracy
floor's reference accuracies, the identity scores are bound to) and the assembly of the scores
document from :func:`benchmark.metrics.scores.bootstrap_scores`.

METRICS.md defines every score; :mod:`benchmark.metrics.scores` computes them with a paired
bootstrap over units and model seeds; sets with fewer than 30 (matched) units get no CI and are
flagged ``small_sample``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from benchmark.devices import check_device
from benchmark.errors import UserError
from benchmark.evaluate.contract import checked_probabilities, input_schema, load_predictions
from benchmark.evaluate.inference import infer, models_by_dataset
from benchmark.evaluate.units import clean_by_dataset, index_set, set_outcomes
from benchmark.metrics import FLOOR_FRACTION
from benchmark.metrics import FLOOR_TOLERANCE as _FLOOR_TOLERANCE
from benchmark.metrics.scores import (
    CI_LEVEL,
    DEFAULT_BOOTSTRAP,
    SCORE_NAMES,
    BootstrapScores,
    bootstrap_scores,
    check_bootstrap,
    small_sample,
)
from benchmark.records import FrozenSet, GraphRecord
from benchmark.release.opened import DatasetDims, Release, VerificationMode

# Per-set cells of the cross-architecture matrix (means over seeds); the by-stage rows carry intervals.
CROSS_SCORES = ("matched_clean_acc", "metamer_acc", "far_acc", "transfer")
DIGITS = 6  # scores are rounded so that the results file's bytes do not depend on float noise


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    out = round(float(value), DIGITS)
    return 0.0 if out == 0 else out  # no "-0.0" in the file


class Evaluator:
    """Scores models on the frozen sets of one release.

    Args:
        release: a :class:`~benchmark.release.opened.Release` (checked in its own mode unless
            ``verify`` says otherwise), a release folder or name (opened with ``verify`` as its
            :class:`~benchmark.release.opened.VerificationMode`; default: every file hash-checked),
            or frozen sets built in memory.
        datasets: score only these datasets (default: every dataset of the release).
        reference_acc: ``{dataset: best reference clean accuracy}`` for the accuracy floor
            (default for a release: :meth:`Release.reference_best`).
        num_classes: ``{dataset: classes}`` (default for a release: its :attr:`Release.dims`, else the
            largest label + 1).
        release_info: ``{"name", "version", "manifest_sha256"}`` (default for a release: its identity).
        num_bootstrap: bootstrap replicates for the CIs; ``bootstrap_seed`` fixes their draws.
    """

    def __init__(self, release: Release | str | os.PathLike | Sequence[FrozenSet], *,
                 datasets: Sequence[str] | None = None, reference_acc: Mapping[str, float] | None = None,
                 num_classes: Mapping[str, int] | None = None, release_info: Mapping[str, str] | None = None,
                 num_bootstrap: int = DEFAULT_BOOTSTRAP, bootstrap_seed: int = 0,
                 verify: VerificationMode | str | bool | None = None) -> None:
        check_bootstrap(num_bootstrap)  # before the release is loaded: a bad knob costs nothing
        self.release: Release | None = None
        if isinstance(release, (Release, str, os.PathLike)):
            self.release = Release.open(release, verify)
            sets = self.release.load_sets()
            self.release_info = dict(release_info) if release_info else self.release.identity
        else:
            sets = list(release)
            self.release_info = dict(release_info) if release_info else None
        self.release_dir: Path | None = self.release.root if self.release is not None else None
        if not all(isinstance(s, FrozenSet) for s in sets):
            raise UserError("release must be a release folder or a list of FrozenSet")
        if datasets is not None:
            available = sorted({s.dataset for s in sets})
            unknown = sorted(set(datasets) - set(available))
            if unknown:
                raise UserError(f"datasets {unknown} are not in this release; its datasets: {', '.join(available)}")
            sets = [s for s in sets if s.dataset in set(datasets)]
        if not sets:
            raise UserError("no frozen sets to score")
        self.sets = sorted(sets, key=lambda s: s.key)
        keys = [s.key for s in self.sets]
        if len(set(keys)) != len(keys):
            raise UserError(f"two frozen sets share a key: {sorted(k for k in keys if keys.count(k) > 1)[0]}")
        self.num_bootstrap = int(num_bootstrap)
        self.bootstrap_seed = int(bootstrap_seed)
        self.datasets = sorted({s.dataset for s in self.sets})
        self.tasks = {s.dataset: s.task for s in self.sets}
        self.records: dict[str, GraphRecord] = {}
        self._dataset_of: dict[str, str] = {}
        self._set_of: dict[str, str] = {}  # first set a record belongs to: names the progress bar's position
        for frozen in self.sets:
            for record in [*frozen.originals, *frozen.variants]:
                known = self.records.get(record.id)
                if known is not None and known is not record and (known.num_nodes != record.num_nodes
                                                                   or known.role != record.role):
                    raise UserError(f"record id {record.id} names two different graphs")
                self.records.setdefault(record.id, record)
                self._dataset_of[record.id] = frozen.dataset
                self._set_of.setdefault(record.id, frozen.key)
        self.num_features = {d: int(next(s for s in self.sets if s.dataset == d).originals[0].x.size(1))
                             for d in self.datasets}
        self.num_classes, self._classes_exact = self._class_counts(num_classes)
        self.reference_acc, self.reference_model = self._reference_acc(reference_acc)
        self._index = [index_set(s) for s in self.sets]
        # Release v2 marks sets whose controls failed ``ranked: false``: scored and shown, not aggregated.
        flags = {(e["dataset"], e["reference_model"], e["kind"], e["layer"]): e["ranked"]
                 for e in (self.release.sets if self.release is not None else []) if "ranked" in e}
        self.ranked: list[bool] | None = ([bool(flags.get((f.dataset, f.reference_model, f.kind, f.layer), True))
                                           for f in self.sets] if flags else None)

    # -- construction helpers ----------------------------------------------------------------------------------
    def _class_counts(self, given: Mapping[str, int] | None) -> tuple[dict[str, int], dict[str, bool]]:
        """Classes per dataset: given, else the release's facts, else the largest label + 1 (not exact)."""
        facts = self.release.dims if self.release is not None else {}
        counts, exact = {}, {}
        for dataset in self.datasets:
            labels = max(int(r.y.max()) for r in self.records.values()
                         if self._dataset_of[r.id] == dataset and r.y.numel()) + 1
            if dataset in facts and facts[dataset].num_features != self.num_features[dataset]:
                raise UserError(f"{self.release_dir}: {dataset} has {facts[dataset].num_features} features by the "
                                f"release's facts but its records have {self.num_features[dataset]}")
            if given and dataset in given:
                counts[dataset], exact[dataset] = int(given[dataset]), True
            elif dataset in facts:
                counts[dataset], exact[dataset] = facts[dataset].num_classes, True
            else:
                counts[dataset], exact[dataset] = labels, False
            if counts[dataset] < labels:
                raise UserError(f"{dataset}: num_classes {counts[dataset]} but labels go up to {labels - 1}")
        return counts, exact

    def _reference_acc(self, given: Mapping[str, float] | None) -> tuple[dict[str, float], dict[str, str]]:
        """The accuracy floor's reference accuracies (and models): given, else the release's; none in memory."""
        if given is not None:
            return {d: float(a) for d, a in given.items() if d in self.datasets}, {}
        best, model = {}, {}
        if self.release is not None:
            for dataset in self.datasets:
                best[dataset], model[dataset] = self.release.reference_best(dataset)
        return best, model

    # -- public API ---------------------------------------------------------------------------------------------
    @property
    def dims(self) -> dict[str, DatasetDims]:
        """What each dataset fixes in a model config (for submission checks)."""
        return {d: DatasetDims(self.num_features[d], self.num_classes[d], self.tasks[d]) for d in self.datasets}

    @property
    def expected_input_schema(self) -> dict:
        """JSON Schema of :meth:`eval_predictions`' input for this release (tensors as ``{dtype, shape}``).

        Every record id is required (coverage), unknown ids are refused, and each record's
        ``shape`` is ``[num_seeds, n_outputs, num_classes]`` with ``n_outputs`` its node count
        (node tasks) or 1 (graph tasks).
        """
        return input_schema(self.records, self._dataset_of, self.tasks, self.num_classes, self._classes_exact)

    def eval(self, model, seeds: Sequence[int] | None = None, device: str | torch.device = "cpu",
             progress: bool = False, label: str | None = None) -> dict:
        """Score a model: a ``GraphModel``, a list of them (one per training seed), or
        ``{dataset: model or list}`` when the release has several datasets.

        ``seeds``: the training seeds of the models, in order (default ``0..K-1``).
        ``progress``: one bar per dataset on stderr, kept on screen, named ``<label> <dataset>``
        and showing the set it is on (``label``: e.g. the submission's entry name).
        Returns the scores document (see :meth:`eval_predictions`).
        """
        probs, seeds, name = self._predict(model, seeds, device, progress, label)
        return self.score_probabilities(probs, seeds, name)

    def eval_programs(self, programs: Mapping[str, Sequence], seeds: Sequence[int], label: str,
                      device: str | torch.device = "cpu", progress: bool = False) -> dict:
        """Score exported programs (:class:`benchmark.programs.ProgramModel`, loaded and checked):
        ``{dataset: [program per seed]}``, forward direction. Returns the scores document."""
        check_device(device)
        missing = sorted(set(self.datasets) - set(programs))
        if missing:
            raise UserError(f"no programs for dataset(s) {missing}; this evaluator scores {self.datasets}")
        seeds = [int(s) for s in seeds]
        if any(len(programs[d]) != len(seeds) for d in self.datasets):
            raise UserError(f"one program per seed {seeds} for every dataset")
        probs = {}
        records = sorted(self.records)
        for dataset in self.datasets:
            ids = [r for r in records if self._dataset_of[r] == dataset]
            probs.update(infer(list(programs[dataset]), self.records, ids, self.tasks[dataset], device, progress,
                               f"{label} {dataset} inference", self._set_of))
        return self.score_probabilities(probs, seeds, label)

    def predict(self, model, device: str | torch.device = "cpu", progress: bool = False) -> dict[str, Tensor]:
        """Class probabilities ``{record_id: [K, n_outputs, C]}`` (float64) of the model(s) on every
        record: the ``outputs`` of a ``{"type": "probs"}`` predictions input."""
        return self._predict(model, None, device, progress)[0]

    def _predict(self, model, seeds, device, progress, label=None) -> tuple[dict[str, Tensor], list[int], str]:
        check_device(device)
        by_dataset = models_by_dataset(model, self.datasets, self.dims)
        num = {len(v) for v in by_dataset.values()}
        if len(num) != 1:
            raise UserError(f"every dataset needs the same number of models (one per seed), got "
                            f"{ {d: len(v) for d, v in by_dataset.items()} }")
        k = num.pop()
        seeds = list(range(k)) if seeds is None else [int(s) for s in seeds]
        if len(seeds) != k or len(set(seeds)) != k:
            raise UserError(f"seeds {seeds} must be {k} distinct training seeds, one per model")
        archs = sorted({m.config.arch for models in by_dataset.values() for m in models})
        probs = {}
        records = sorted(self.records)
        for dataset in self.datasets:
            ids = [r for r in records if self._dataset_of[r] == dataset]
            desc = f"{label or '+'.join(archs)} {dataset} inference"
            probs.update(infer(by_dataset[dataset], self.records, ids, self.tasks[dataset], device, progress, desc,
                               self._set_of))
        return probs, seeds, "+".join(archs)

    def eval_predictions(self, predictions: Mapping | str | os.PathLike) -> dict:
        """Score precomputed outputs.

        ``predictions``: ``{"type": "logits"|"probs", "seeds": [...], "model": optional name,
        "outputs": {record_id: [K, n_outputs, C] tensor or nested list}}``, or a ``.safetensors``
        file of the same (see :func:`load_predictions`). Validated against
        :attr:`expected_input_schema`; each violation names its field.

        Returns ``{"seeds", "evaluated_model", "sets", "aggregate", "by_kind_stage",
        "clean_acc_by_dataset", "accuracy_floor", "cross_architecture", "cross_architecture_by_stage",
        "bootstrap"}``; every score is ``{"mean", "std", "ci_low", "ci_high"}`` (None where undefined,
        CI None on a ``small_sample`` set).
        """
        if isinstance(predictions, (str, os.PathLike)):
            predictions = load_predictions(predictions)
        probs, seeds, name = checked_probabilities(predictions, self.expected_input_schema)
        return self.score_probabilities(probs, seeds, name)

    def score_probabilities(self, probs: Mapping[str, Tensor], seeds: Sequence[int], model_name: str) -> dict:
        """Scores from class probabilities ``{record_id: [K, n_outputs, C]}`` (as :meth:`predict`
        returns; unchecked, use :meth:`eval_predictions` for outside input)."""
        return self.score_with_replicates(probs, seeds, model_name)[0]

    def score_with_replicates(self, probs: Mapping[str, Tensor], seeds: Sequence[int],
                              model_name: str) -> tuple[dict, BootstrapScores]:
        """:meth:`score_probabilities` and the bootstrap behind it (per-set and aggregate replicates):
        two models scored by one evaluator share their unit draws, so differences of their replicates
        are a paired bootstrap (:func:`benchmark.metrics.scores.paired_difference`)."""
        if self.ranked is not None and not any(self.ranked):
            raise UserError(f"none of the {len(self.sets)} sets scored is ranked (each failed its controls or "
                            f"stayed below 0.90 valid metamers; see the release card), so there is no aggregate")
        preds = {r: p.argmax(-1) for r, p in probs.items()}
        outcomes = [set_outcomes(index, probs, preds) for index in self._index]
        keys = [s.key for s in self.sets]
        scored = bootstrap_scores(outcomes, keys, self.num_bootstrap, self.bootstrap_seed, self.ranked)
        sets, cross = [], []
        for i, (frozen, outcome, intervals) in enumerate(zip(self.sets, outcomes, scored.per_set)):
            scores = {name: intervals[name].to_dict(DIGITS) for name in SCORE_NAMES}
            small = small_sample(outcome)
            sets.append({"key": frozen.key, "dataset": frozen.dataset, "task": frozen.task,
                         "reference_model": frozen.reference_model, "kind": frozen.kind, "layer": frozen.layer,
                         "num_units": outcome.num_units, "num_matched_units": outcome.num_matched_units,
                         "small_sample": small, "num_observations": outcome.counts(), "scores": scores,
                         **({"ranked": self.ranked[i]} if self.ranked is not None else {})})
            cross.append({"dataset": frozen.dataset, "kind": frozen.kind, "reference_model": frozen.reference_model,
                          "layer": frozen.layer, "evaluated_model": model_name,
                          "num_matched_units": outcome.num_matched_units, "small_sample": small,
                          **{name: scores[name]["mean"] for name in CROSS_SCORES}})
        by_kind_stage = self._groups(scored, lambda f: (f.kind, f.layer), ("kind", "layer"), SCORE_NAMES)
        by_reference_stage = self._groups(scored, lambda f: (f.reference_model, f.kind, f.layer),
                                          ("reference_model", "kind", "layer"), CROSS_SCORES)
        for row in by_reference_stage:
            row["evaluated_model"] = model_name
        clean = {d: _round(acc) for d, acc in clean_by_dataset(self._index, self.datasets, preds).items()}
        floor = {}
        for dataset, best in sorted(self.reference_acc.items()):
            best = _round(best)
            threshold = FLOOR_FRACTION * best  # not rounded: the leaderboard re-derives it exactly
            verdict = {"reference_best": best, "threshold": threshold,
                       "passed": bool(clean[dataset] >= threshold - _FLOOR_TOLERANCE)}
            if dataset in self.reference_model:
                verdict["reference_model"] = self.reference_model[dataset]
            floor[dataset] = verdict
        return {"seeds": list(seeds), "evaluated_model": model_name, "sets": sets,
                "aggregate": {name: scored.aggregate[name].to_dict(DIGITS) for name in SCORE_NAMES},
                "by_kind_stage": by_kind_stage,
                "clean_acc_by_dataset": clean, "accuracy_floor": floor, "cross_architecture": cross,
                "cross_architecture_by_stage": by_reference_stage,
                "bootstrap": {"replicates": self.num_bootstrap, "level": CI_LEVEL, "seed": self.bootstrap_seed}}, scored

    def _groups(self, scored, key, fields: tuple[str, ...], names: Sequence[str]) -> list[dict]:
        """Scores averaged over the sets sharing ``key(frozen)`` (named ``fields``), with the aggregate's bootstrap."""
        members: dict[tuple, list[int]] = {}
        for i, frozen in enumerate(self.sets):
            members.setdefault(key(frozen), []).append(i)
        rows = []
        for group_key, indices in sorted(members.items()):
            intervals, _ = scored.group(indices)
            rows.append({**dict(zip(fields, group_key)), "num_sets": len(indices),
                         "sets": [self.sets[i].key for i in indices],
                         "scores": {name: intervals[name].to_dict(DIGITS) for name in names}})
        return rows
