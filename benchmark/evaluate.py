"""The evaluator: scores of a model (or its predictions) on the frozen sets of a release.

    evaluator = Evaluator("data_cards/v1")            # loads and verifies the release
    scores = evaluator.eval([model_seed0, model_seed1, model_seed2], seeds=[0, 1, 2])
    scores = evaluator.eval_predictions({"type": "logits", "seeds": [0, 1, 2],
                                         "outputs": {record_id: tensor [3, n_outputs, C], ...}})
    evaluator.expected_input_schema                    # JSON Schema of the predictions input

A *unit* is what one prediction is scored on: a test node of a node task's graph (the original's
``target`` nodes) or one test graph of a graph task. Each metamer is grouped with its near and
far twin (same original, same metamer seed) and the three are scored on the same *matched*
units only: where all three are valid targets (unit matching; clean accuracy is reported on all
units and on the matched ones). A metamer without both twins, or two variants of one role for
one original and seed, is a :class:`UserError` naming the set, the record and the field.
METRICS.md defines every score; :mod:`benchmark.metrics.scores` computes them with a paired
bootstrap over units and model seeds; sets with fewer than 30 (matched) units get no CI and are
flagged ``small_sample``.

``evaluate_submission(entry_dir, release_dir)`` validates a submission folder, scores it and
returns the results document (``write_results`` writes ``submissions/results/<entry>.json``).
"""
from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from benchmark.devices import check_device
from benchmark.errors import UserError
from benchmark.files import atomic_write_json, read_json, sha256_file
from benchmark.metrics import FLOOR_FRACTION
from benchmark.metrics import FLOOR_TOLERANCE as _FLOOR_TOLERANCE
from benchmark.metrics.scores import (
    CI_LEVEL,
    DEFAULT_BOOTSTRAP,
    SCORE_NAMES,
    VARIANT_ROLES,
    BootstrapScores,
    SetOutcomes,
    bootstrap_scores,
    check_bootstrap,
    js_distance,
    small_sample,
)
from benchmark.records import FrozenSet, GraphRecord
from benchmark.schemas import check_schema, json_path, load_schema, raise_problems, schema_problems
from benchmark.submissions import DatasetDims

# 2.0.0: unit-matched forward scores (matched_clean_acc; transfer on matched units), the IC candidates
# of issue 12.3, per kind x stage and reference x kind x stage aggregates, no CI below MIN_UNITS units.
EVALUATOR_VERSION = "2.0.0"
# Per-set cells of the cross-architecture matrix (means over seeds); the by-stage rows carry intervals.
CROSS_SCORES = ("matched_clean_acc", "metamer_acc", "far_acc", "transfer")
DIGITS = 6  # scores are rounded so that the results file's bytes do not depend on float noise
RESULTS_DIR = "results"
_FLOAT_DTYPES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32",
                 torch.float64: "float64"}
_GRAPH_BATCH = 256  # graphs per forward pass for graph tasks


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    out = round(float(value), DIGITS)
    return 0.0 if out == 0 else out  # no "-0.0" in the file


# -- Release identity and reference checkpoints -------------------------------------------------------------------

def release_identity(release_dir: str | os.PathLike) -> dict[str, str]:
    """``{"name", "version", "manifest_sha256"}`` of a release folder (the hash of its ``MANIFEST.json``)."""
    from benchmark.release.manifest import MANIFEST_NAME, read_manifest

    manifest = read_manifest(release_dir)  # schema-checked: name and version are present
    return {"name": manifest["name"], "version": manifest["version"],
            "manifest_sha256": sha256_file(Path(release_dir) / MANIFEST_NAME)}


def reference_cards(release_dir: str | os.PathLike, verify: bool = True) -> dict[str, dict[str, dict]]:
    """``{dataset: {arch: card}}`` from the ``checkpoints/<dataset>/<arch>/card.json`` files the manifest lists.

    The accuracy floor and the class counts come from these cards, so only listed files are read
    (an unlisted card is ignored) and, with ``verify``, each is hash-checked first (an edited or
    deleted card raises :class:`IntegrityError`).
    """
    from benchmark.release.manifest import read_manifest, verify_files

    manifest = read_manifest(release_dir)
    listed = sorted(rel for rel in manifest["files"]
                    if len(parts := rel.split("/")) == 4 and parts[0] == "checkpoints" and parts[3] == "card.json")
    if verify:
        verify_files(release_dir, manifest, only=listed)
    cards: dict[str, dict[str, dict]] = {}
    for rel in listed:
        _, dataset, arch, _ = rel.split("/")
        cards.setdefault(dataset, {})[arch] = read_json(Path(release_dir) / rel)
    return cards


# -- Index of the sets: units and observations ---------------------------------------------------------------------

@dataclass
class _Triple:
    """One metamer seed of one original: the metamer and its twins, scored on the same positions."""

    records: dict[str, GraphRecord]  # role -> record
    parent: GraphRecord
    positions: Tensor  # [P] node positions (node task) or [0] (graph task) where all three are valid targets
    units: Tensor  # [P] unit index of each position
    labels: Tensor  # [P] the original's labels at those positions
    in_sim: dict[str, Tensor]  # role -> [P] input similarity


@dataclass
class _SetIndex:
    frozen: FrozenSet
    num_units: int
    originals: list[tuple[GraphRecord, Tensor, Tensor]]  # (record, positions, labels)
    triples: list[_Triple]


def _output_positions(record: GraphRecord, task: str) -> int:
    """Rows of a record's outputs: its nodes (node task) or one (graph task)."""
    return record.num_nodes if task == "node" else 1


def _graph_similarity(record: GraphRecord) -> Tensor:
    """Graph tasks: one similarity per graph, the mean over its nodes where stored per node (NaN left out)."""
    sim = record.similarity.double().view(-1)
    finite = sim[torch.isfinite(sim)]
    return finite.mean() if finite.numel() else torch.tensor(float("nan"), dtype=torch.float64)


def _index_set(frozen: FrozenSet) -> _SetIndex:
    """Units of one set and its matched observations: per (original, metamer seed) the positions
    where the metamer, its near twin and its far twin are all valid targets (unit matching)."""
    if frozen.task not in ("node", "graph"):
        raise UserError(f"set {frozen.key}: unknown task {frozen.task!r}; valid tasks: graph, node")
    originals, unit_maps, offset = [], {}, 0
    for original in frozen.originals:
        if frozen.task == "node":
            positions = original.target.bool().nonzero().view(-1)
            labels = original.y[positions]
        else:
            positions = torch.zeros(1, dtype=torch.long)
            labels = original.y.view(-1)[:1]
        unit_map = torch.full((_output_positions(original, frozen.task),), -1, dtype=torch.long)
        unit_map[positions] = torch.arange(offset, offset + positions.numel())
        offset += positions.numel()
        unit_maps[original.id] = (original, unit_map)
        originals.append((original, positions, labels))
    groups: dict[tuple[str, int], dict[str, GraphRecord]] = {}
    for i, record in enumerate(frozen.variants):
        where = f"set {frozen.key}: variants[{i}] (record {record.id})"
        if record.role not in VARIANT_ROLES:
            raise UserError(f"{where}.role: {record.role!r}; valid variant roles: {', '.join(VARIANT_ROLES)}")
        if record.parent_id not in unit_maps:
            raise UserError(f"{where}.parent_id: {record.parent_id!r} is not an original of this set")
        parent = unit_maps[record.parent_id][0]
        if frozen.task == "node" and record.num_nodes != parent.num_nodes:
            raise UserError(f"{where}.x: node-task variant has {record.num_nodes} nodes, its original {parent.id} "
                            f"{parent.num_nodes}; node metamers keep the node set")
        group = groups.setdefault((record.parent_id, record.seed), {})
        if record.role in group:
            raise UserError(f"{where}.seed: a second {record.role} of original {record.parent_id} with seed "
                            f"{record.seed} (first: {group[record.role].id})")
        group[record.role] = record
    triples = []
    for (parent_id, seed), group in sorted(groups.items()):
        missing = [role for role in VARIANT_ROLES if role not in group]
        if missing:
            raise UserError(f"set {frozen.key}: original {parent_id}, seed {seed}: no {' or '.join(missing)} "
                            f"record; every metamer is scored with both its twins")
        parent, unit_map = unit_maps[parent_id]
        if frozen.task == "node":
            mask = parent.target.bool().clone()
            for record in group.values():
                mask &= record.target.bool() & record.valid.bool()
            positions = mask.nonzero().view(-1)
            labels = parent.y[positions]
            in_sim = {role: group[role].similarity.double()[positions] for role in VARIANT_ROLES}
        else:
            valid = all(bool(group[role].valid.view(-1)[0]) for role in VARIANT_ROLES)
            positions = torch.zeros(1 if valid else 0, dtype=torch.long)
            labels = parent.y.view(-1)[:1].repeat(positions.numel())
            in_sim = {role: _graph_similarity(group[role]).repeat(positions.numel()) for role in VARIANT_ROLES}
        triples.append(_Triple(group, parent, positions, unit_map[positions], labels, in_sim))
    return _SetIndex(frozen, offset, originals, triples)


def _outcomes(index: _SetIndex, probs: Mapping[str, Tensor], preds: Mapping[str, Tensor]) -> SetOutcomes:
    """Turn per-record class probabilities ``[K, n_outputs, C]`` into a :class:`SetOutcomes`."""
    clean = torch.cat([(preds[o.id][:, pos] == labels).double() for o, pos, labels in index.originals], dim=1)
    k = clean.size(0)
    units = [t.units for t in index.triples]
    correct, same, in_sim, out_sim = ({r: [] for r in VARIANT_ROLES} for _ in range(4))
    for t in index.triples:
        parent_pred = preds[t.parent.id][:, t.positions]
        parent_probs = probs[t.parent.id][:, t.positions]
        for role in VARIANT_ROLES:
            record_id = t.records[role].id
            pred = preds[record_id][:, t.positions]
            correct[role].append((pred == t.labels).double())
            same[role].append((pred == parent_pred).double())
            in_sim[role].append(t.in_sim[role])
            out_sim[role].append(1.0 - js_distance(probs[record_id][:, t.positions], parent_probs))

    def cat(parts: list[Tensor]) -> Tensor:
        return torch.cat(parts, dim=1) if parts else torch.zeros((k, 0), dtype=torch.float64)

    return SetOutcomes(
        num_units=index.num_units, clean=clean,
        unit=torch.cat(units).long() if units else torch.zeros(0, dtype=torch.long),
        correct={r: cat(correct[r]) for r in VARIANT_ROLES},
        same={r: cat(same[r]) for r in VARIANT_ROLES},
        in_sim={r: torch.cat(in_sim[r]).double() if in_sim[r] else torch.zeros(0, dtype=torch.float64)
                for r in VARIANT_ROLES},
        out_sim={r: cat(out_sim[r]) for r in VARIANT_ROLES},
    )


# -- Predictions input ---------------------------------------------------------------------------------------------

def load_predictions(path: str | os.PathLike) -> dict:
    """Predictions from a ``.safetensors`` file: one tensor per record id ``[K, n_outputs, C]``;
    metadata ``type`` (logits|probs), ``seeds`` (JSON list) and optionally ``model``."""
    import json

    from safetensors import safe_open

    from benchmark.checkpoints import read_safetensors

    path = Path(path)
    tensors = read_safetensors(path)  # refuses pickles and NaN/Inf
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    try:
        seeds = json.loads(meta.get("seeds", "null"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: metadata 'seeds' must be a JSON list of integers ({err})") from err
    out = {"type": meta.get("type"), "seeds": seeds, "outputs": tensors}
    if "model" in meta:
        out["model"] = meta["model"]
    return out


def _describe(predictions: object) -> tuple[object, dict[str, Tensor]]:
    """Replace every output tensor by ``{dtype, shape}`` for schema validation; also return the tensors."""
    if not isinstance(predictions, Mapping):
        raise UserError(f"predictions must be a mapping (see Evaluator.expected_input_schema), "
                        f"got {type(predictions).__name__}")
    described = {k: v for k, v in predictions.items() if k != "outputs"}
    if isinstance(described.get("seeds"), tuple):
        described["seeds"] = list(described["seeds"])
    outputs = predictions.get("outputs")
    if outputs is None:
        return described, {}
    if not isinstance(outputs, Mapping):
        described["outputs"] = outputs  # the schema names the problem
        return described, {}
    tensors, shapes = {}, {}
    for key, value in outputs.items():
        if not isinstance(value, Tensor):
            try:
                value = torch.as_tensor(value)
            except (TypeError, ValueError, RuntimeError) as err:
                raise UserError(f"predictions.outputs[{key!r}]: not a tensor or nested list of numbers ({err})") from err
        if value.is_meta or value.layout != torch.strided:
            kind = "meta" if value.is_meta else str(value.layout).replace("torch.", "")
            raise UserError(f"predictions.outputs[{key!r}]: a {kind} tensor; outputs must be dense tensors holding "
                            "their values (torch.strided layout)")
        tensors[key] = value
        shapes[key] = {"dtype": _FLOAT_DTYPES.get(value.dtype, str(value.dtype).replace("torch.", "")),
                       "shape": list(value.shape)}
    described["outputs"] = shapes
    return described, tensors


# -- The evaluator -----------------------------------------------------------------------------------------------

class Evaluator:
    """Scores models on the frozen sets of one release.

    Args:
        release: a release folder (``data_cards/v1``; loaded with ``load_frozen_sets(verify=verify)``)
            or frozen sets built in memory.
        datasets: score only these datasets (default: every dataset of the release).
        reference_acc: ``{dataset: best reference clean accuracy}`` for the accuracy floor
            (default for a folder: the best ``metrics.test_acc`` of its reference checkpoint cards).
        num_classes: ``{dataset: classes}`` (default: the reference cards' ``out_channels``, else
            the largest label + 1).
        release_info: ``{"name", "version", "manifest_sha256"}`` (default for a folder: its manifest).
        num_bootstrap: bootstrap replicates for the CIs; ``bootstrap_seed`` fixes their draws.
    """

    def __init__(self, release: str | os.PathLike | Sequence[FrozenSet], *, datasets: Sequence[str] | None = None,
                 reference_acc: Mapping[str, float] | None = None, num_classes: Mapping[str, int] | None = None,
                 release_info: Mapping[str, str] | None = None, num_bootstrap: int = DEFAULT_BOOTSTRAP,
                 bootstrap_seed: int = 0, verify: bool = True) -> None:
        check_bootstrap(num_bootstrap)  # before the release is loaded: a bad knob costs nothing
        cards: dict[str, dict[str, dict]] = {}
        if isinstance(release, (str, os.PathLike)):
            from benchmark.release import load_frozen_sets
            from benchmark.release.loader import resolve_release

            self.release_dir: Path | None = resolve_release(release)
            sets = list(load_frozen_sets(self.release_dir, verify=verify))
            self.release_info = dict(release_info) if release_info else release_identity(self.release_dir)
            cards = reference_cards(self.release_dir, verify=verify)
        else:
            self.release_dir = None
            sets = list(release)
            self.release_info = dict(release_info) if release_info else None
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
        self.num_classes, self._classes_exact = self._class_counts(num_classes, cards)
        self.reference_acc, self.reference_model = self._reference_acc(reference_acc, cards)
        self._index = [_index_set(s) for s in self.sets]

    # -- construction helpers ----------------------------------------------------------------------------------
    def _class_counts(self, given: Mapping[str, int] | None, cards: dict) -> tuple[dict[str, int], dict[str, bool]]:
        counts, exact = {}, {}
        for dataset in self.datasets:
            labels = max(int(r.y.max()) for r in self.records.values()
                         if self._dataset_of[r.id] == dataset and r.y.numel()) + 1
            from_cards = {int(c["config"]["out_channels"]) for c in cards.get(dataset, {}).values()
                          if isinstance(c.get("config"), dict) and "out_channels" in c["config"]}
            if given and dataset in given:
                counts[dataset], exact[dataset] = int(given[dataset]), True
            elif len(from_cards) == 1:
                counts[dataset], exact[dataset] = from_cards.pop(), True
            else:
                counts[dataset], exact[dataset] = labels, False
            if counts[dataset] < labels:
                raise UserError(f"{dataset}: num_classes {counts[dataset]} but labels go up to {labels - 1}")
        return counts, exact

    def _reference_acc(self, given: Mapping[str, float] | None, cards: dict) -> tuple[dict[str, float], dict[str, str]]:
        if given is not None:
            return {d: float(a) for d, a in given.items() if d in self.datasets}, {}
        best, model = {}, {}
        for dataset in self.datasets:
            accs = {arch: card.get("metrics", {}).get("test_acc") for arch, card in cards.get(dataset, {}).items()}
            accs = {a: float(v) for a, v in accs.items() if isinstance(v, (int, float))}
            if accs:
                arch = max(sorted(accs), key=lambda a: accs[a])
                best[dataset], model[dataset] = accs[arch], arch
            elif self.release_dir is not None:
                raise UserError(f"{self.release_dir}: no reference checkpoint card with metrics.test_acc for "
                                f"{dataset} under checkpoints/{dataset}/<arch>/card.json; the accuracy floor "
                                "needs one")
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
        schema = copy.deepcopy(load_schema("predictions"))
        outputs = schema["properties"]["outputs"]
        properties = {}
        for record_id in sorted(self.records):
            record = self.records[record_id]
            dataset = self._dataset_of[record_id]
            classes = ({"const": self.num_classes[dataset]} if self._classes_exact[dataset]
                       else {"minimum": self.num_classes[dataset]})
            properties[record_id] = {"$ref": "#/$defs/tensor", "properties": {"shape": {"prefixItems": [
                {}, {"const": _output_positions(record, self.tasks[dataset])}, classes]}}}
        outputs["properties"] = properties
        outputs["required"] = sorted(self.records)
        outputs["additionalProperties"] = False
        return schema

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
            probs.update(self._infer(list(programs[dataset]), ids, self.tasks[dataset], device, progress,
                                     f"{label} {dataset} inference"))
        return self.score_probabilities(probs, seeds, label)

    def predict(self, model, device: str | torch.device = "cpu", progress: bool = False) -> dict[str, Tensor]:
        """Class probabilities ``{record_id: [K, n_outputs, C]}`` (float64) of the model(s) on every
        record: the ``outputs`` of a ``{"type": "probs"}`` predictions input."""
        return self._predict(model, None, device, progress)[0]

    def _predict(self, model, seeds, device, progress, label=None) -> tuple[dict[str, Tensor], list[int], str]:
        check_device(device)
        by_dataset = self._models_by_dataset(model)
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
            probs.update(self._infer(by_dataset[dataset], ids, self.tasks[dataset], device, progress, desc))
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
        described, tensors = _describe(predictions)
        raise_problems(schema_problems(described, self.expected_input_schema, "predictions"),
                       "predictions do not match Evaluator.expected_input_schema")
        seeds = [int(s) for s in described["seeds"]]
        problems = []
        probs = {}
        for record_id in sorted(tensors):
            value = tensors[record_id]
            where = json_path("predictions", ["outputs", record_id])
            if value.size(0) != len(seeds):
                problems.append(f"{where}.shape[0]: {value.size(0)} model seeds, but seeds lists {len(seeds)}")
                continue
            value = value.detach().to("cpu", torch.float64)
            if not torch.isfinite(value).all():
                problems.append(f"{where}: NaN or Inf values")
                continue
            if described["type"] == "probs":
                if (value < 0).any() or not bool(((value.sum(-1) - 1.0).abs() <= 1e-3).all()):
                    problems.append(f"{where}: type is 'probs' but rows are negative or do not sum to 1")
                    continue
                probs[record_id] = value / value.sum(-1, keepdim=True)
            else:
                probs[record_id] = torch.softmax(value, dim=-1)
        raise_problems(problems, "predictions refused")
        return self.score_probabilities(probs, seeds, str(predictions.get("model", "unknown")))

    # -- internals -------------------------------------------------------------------------------------------
    def _models_by_dataset(self, model) -> dict[str, list]:
        from benchmark.models import GraphModel

        def as_list(value, where: str) -> list:
            models = [value] if isinstance(value, GraphModel) else list(value)
            if not models or not all(isinstance(m, GraphModel) for m in models):
                raise UserError(f"{where}: expected a GraphModel or a non-empty list of them (one per seed)")
            return models

        if isinstance(model, Mapping):
            missing = sorted(set(self.datasets) - set(model))
            if missing:
                raise UserError(f"no model for dataset(s) {missing}; this evaluator scores {self.datasets}")
            by_dataset = {d: as_list(model[d], f"models[{d!r}]") for d in self.datasets}
        else:
            if len(self.datasets) > 1:
                raise UserError(f"this release has several datasets ({', '.join(self.datasets)}): pass "
                                "{dataset: model or [models]} or build Evaluator(..., datasets=[one])")
            by_dataset = {self.datasets[0]: as_list(model, "model")}
        for dataset, models in by_dataset.items():
            for i, m in enumerate(models):
                c = m.config
                expected = (self.num_features[dataset], self.num_classes[dataset], self.tasks[dataset])
                if (c.in_channels, c.out_channels, c.task) != expected:
                    raise UserError(f"model {i} for {dataset} has (in_channels, out_channels, task) = "
                                    f"{(c.in_channels, c.out_channels, c.task)}; {dataset} needs {expected}")
        return by_dataset

    @torch.inference_mode()
    def _infer(self, models: list, ids: list[str], task: str, device, progress: bool,
               desc: str = "inference") -> dict[str, Tensor]:
        """Class probabilities ``[K, n_outputs, C]`` (float64, CPU) of every record in ``ids``."""
        from torch_geometric.data import Batch, Data

        # Leave the caller's models as they were: training flag and device.
        modes = [m.training for m in models]
        devices = [next(m.parameters(), torch.empty(0)).device for m in models]
        out: dict[str, list[Tensor]] = {r: [] for r in ids}
        try:
            for m in models:
                m.eval()
                m.to(device)
            if task == "node":
                prefix = _shared_prefix(models)
                # Records decoded from a release share tensors (every set's original is the base
                # graph, feature metamers keep its edges): run each distinct graph once.
                done: dict[tuple, list[Tensor]] = {}
                bar = tqdm(ids, desc=desc, unit="graph", disable=not progress, leave=True)
                for record_id in bar:
                    if progress and bar.postfix != self._set_of[record_id]:
                        bar.set_postfix_str(self._set_of[record_id], refresh=False)
                    record = self.records[record_id]
                    key = tuple((t.data_ptr(), tuple(t.shape), t.stride(), t.dtype) for t in (record.x, record.edge_index))
                    if key not in done:
                        x, edge_index = record.x.to(device), record.edge_index.to(device)
                        done[key] = [torch.softmax(logits.double(), -1).cpu()
                                     for logits in _node_logits(models, prefix, x, edge_index)]
                    out[record_id] = done[key]
            else:
                bar = tqdm(range(0, len(ids), _GRAPH_BATCH), desc=desc, unit="batch", disable=not progress,
                           leave=True)
                for start in bar:
                    chunk = ids[start:start + _GRAPH_BATCH]
                    if progress:
                        bar.set_postfix_str(self._set_of[chunk[0]], refresh=False)
                    batch = Batch.from_data_list([Data(x=self.records[r].x, edge_index=self.records[r].edge_index,
                                                       num_nodes=self.records[r].num_nodes) for r in chunk]).to(device)
                    for m in models:
                        p = torch.softmax(m(batch.x, batch.edge_index, batch=batch.batch).double(), -1).cpu()
                        for i, record_id in enumerate(chunk):
                            out[record_id].append(p[i:i + 1])
        finally:
            for m, mode, where in zip(models, modes, devices):
                m.train(mode)
                m.to(where)
        return {r: torch.stack(v) for r, v in out.items()}

    def score_probabilities(self, probs: Mapping[str, Tensor], seeds: Sequence[int], model_name: str) -> dict:
        """Scores from class probabilities ``{record_id: [K, n_outputs, C]}`` (as :meth:`predict`
        returns; unchecked, use :meth:`eval_predictions` for outside input)."""
        return self.score_with_replicates(probs, seeds, model_name)[0]

    def score_with_replicates(self, probs: Mapping[str, Tensor], seeds: Sequence[int],
                              model_name: str) -> tuple[dict, BootstrapScores]:
        """:meth:`score_probabilities` and the bootstrap behind it (per-set and aggregate replicates):
        two models scored by one evaluator share their unit draws, so differences of their replicates
        are a paired bootstrap (:func:`benchmark.metrics.scores.paired_difference`)."""
        preds = {r: p.argmax(-1) for r, p in probs.items()}
        outcomes = [_outcomes(index, probs, preds) for index in self._index]
        keys = [s.key for s in self.sets]
        scored = bootstrap_scores(outcomes, keys, self.num_bootstrap, self.bootstrap_seed)
        sets, cross = [], []
        for frozen, outcome, intervals in zip(self.sets, outcomes, scored.per_set):
            scores = {name: intervals[name].to_dict(DIGITS) for name in SCORE_NAMES}
            small = small_sample(outcome)
            sets.append({"key": frozen.key, "dataset": frozen.dataset, "task": frozen.task,
                         "reference_model": frozen.reference_model, "kind": frozen.kind, "layer": frozen.layer,
                         "num_units": outcome.num_units, "num_matched_units": outcome.num_matched_units,
                         "small_sample": small, "num_observations": outcome.counts(), "scores": scores})
            cross.append({"dataset": frozen.dataset, "kind": frozen.kind, "reference_model": frozen.reference_model,
                          "layer": frozen.layer, "evaluated_model": model_name,
                          "num_matched_units": outcome.num_matched_units, "small_sample": small,
                          **{name: scores[name]["mean"] for name in CROSS_SCORES}})
        by_kind_stage = self._groups(scored, lambda f: (f.kind, f.layer), ("kind", "layer"), SCORE_NAMES)
        by_reference_stage = self._groups(scored, lambda f: (f.reference_model, f.kind, f.layer),
                                          ("reference_model", "kind", "layer"), CROSS_SCORES)
        for row in by_reference_stage:
            row["evaluated_model"] = model_name
        clean = self._clean_by_dataset(preds)
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

    def _clean_by_dataset(self, preds: Mapping[str, Tensor]) -> dict[str, float]:
        """Clean accuracy per dataset over its distinct originals, mean over model seeds."""
        out = {}
        for dataset in self.datasets:
            seen, hits, total = set(), None, 0
            for index in self._index:
                if index.frozen.dataset != dataset:
                    continue
                for original, positions, labels in index.originals:
                    if original.id in seen:
                        continue
                    seen.add(original.id)
                    right = (preds[original.id][:, positions] == labels).double().sum(1)
                    hits = right if hits is None else hits + right
                    total += positions.numel()
            out[dataset] = _round(float((hits / total).mean())) if total else None
        return out


# -- Submissions -> results file ------------------------------------------------------------------------------------

def _shared_prefix(models: list) -> int:
    """Leading blocks whose output is the same for every model (SGC's parameter-free ``S^K X``):
    ``GraphModel.fixed_prefix`` when all models share one config, else 0."""
    from benchmark.models import GraphModel

    if not models or not all(isinstance(m, GraphModel) for m in models):
        return 0
    if any(m.config != models[0].config for m in models[1:]):
        return 0
    return models[0].fixed_prefix


def _node_logits(models: list, prefix: int, x: Tensor, edge_index: Tensor) -> list[Tensor]:
    """Each model's logits on one graph; a shared prefix runs once (same operations, same bits)."""
    if not prefix:
        return [m(x, edge_index) for m in models]
    h = models[0].embed(x, edge_index, layer=prefix)
    return [m.head_from(h, edge_index, layer=prefix) for m in models]


def results_path(entry_dir: str | os.PathLike) -> Path:
    """``submissions/<entry>`` -> ``submissions/results/<entry>.json``."""
    entry_dir = Path(entry_dir).resolve()
    return entry_dir.parent / RESULTS_DIR / f"{entry_dir.name}.json"


def evaluate_submission(entry_dir: str | os.PathLike, release_dir: str | os.PathLike,
                        num_bootstrap: int = DEFAULT_BOOTSTRAP, device: str = "cpu", progress: bool = False,
                        evaluator: Evaluator | None = None) -> dict:
    """Validate ``entry_dir`` (every check of ``validate``), score it on the release, return the results document.

    The document matches ``benchmark/schemas/result.schema.json``; apart from ``wall_s`` the same
    inputs give the same bytes on one CPU kernel family, and scores within
    ``benchmark.reproduce.SCORE_ATOL`` on another CPU (``benchmark.reproduce`` compares them).
    """
    from benchmark.submissions import validate_submission

    start = time.perf_counter()
    check_device(device)  # before the release is loaded
    if evaluator is None:
        evaluator = Evaluator(release_dir, num_bootstrap=num_bootstrap)
    if evaluator.release_info is None:
        raise UserError("the evaluator has no release identity (name, version, manifest hash) to bind scores to")
    checked = validate_submission(entry_dir, datasets=evaluator.datasets, dims=evaluator.dims, device=device,
                                  references=evaluator.release_dir)
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
    }
    return results_document(sub.entry, submission, evaluator, scores, start)


def results_document(entry: str, submission: dict, evaluator: Evaluator, scores: dict, start: float,
                     **extra) -> dict:
    """The results file of ``entry``: its ``submission`` block, the release identity, the versions and
    the ``scores`` of :meth:`Evaluator.eval` (or ``eval_predictions``), schema-checked.

    ``extra`` top-level keys (``prediction_only=True``) go in as given; ``wall_s`` counts from ``start``.
    """
    from benchmark.versions import hardware, library_versions

    result = {
        "entry": entry,
        **extra,
        "submission": submission,
        "release": dict(evaluator.release_info),
        "evaluator_version": EVALUATOR_VERSION,
        "library_versions": library_versions(),
        "hardware": hardware(),
        **{name: scores[name] for name in ("bootstrap", "sets", "aggregate", "clean_acc_by_dataset", "accuracy_floor",
                                           "cross_architecture", "by_kind_stage", "cross_architecture_by_stage")},
    }
    result["wall_s"] = round(time.perf_counter() - start, 2)
    check_schema(result, "result", "result", "results document does not match result.schema.json")
    return result


def write_results(result: dict, path: str | os.PathLike) -> Path:
    """Validate ``result`` against its schema and write it atomically as canonical JSON."""
    check_schema(result, "result", "result", "results document does not match result.schema.json")
    path = Path(path)
    atomic_write_json(path, result)
    return path
