"""Building a frozen release from a YAML config: resumable, atomic, deterministic.

Layout of the release folder::

    MANIFEST.json                       SHA-256 of every file below, sets, generator config, versions
    README.md                           Hugging Face data card (YAML header + metamer block)
    data/bases/<dataset>.parquet        base graph(s) every set refers to
    data/<dataset>/<arch>-<kind>.parquet one shard per frozen set (original, metamers, near, far)
    checkpoints/<dataset>/<arch>/       reference model: model.safetensors + card.json
    .build/state.json                   progress and build timing (not part of the release, not hashed)

Each finished step (a checkpoint, a shard) is written atomically and recorded in the state, so
an interrupted build re-run redoes nothing finished. Timing (per step, the total and the machine
it was measured on) lives only in the state, never in a hashed file, so a rebuild on the same
machine and library versions gives byte-identical shards, checkpoints, README.md and MANIFEST.json:
the manifest's hash is the release's identity.

The work of a unit is two pure functions, :func:`train_reference` (a checkpoint) and
:func:`unit_shard` (a shard's bytes), so another executor can run them elsewhere and hand back the
bytes: ``--executor ray`` (:mod:`benchmark.executors.ray_build`) writes them with
:meth:`ReleaseBuilder.record_checkpoint` / :meth:`ReleaseBuilder.record_unit` and assembles card
and manifest with :meth:`ReleaseBuilder.complete`. The bytes depend on torch's thread count (float
reductions split by thread): the same build with another ``torch.get_num_threads()`` can give
other weights and shards.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from benchmark import __version__
from benchmark.checkpoints import CARD_NAME, WEIGHTS_NAME, load_checkpoint, save_checkpoint
from benchmark.errors import UserError, unknown_choice
from benchmark.files import atomic_write_bytes, atomic_write_json, read_json, sha256_file
from benchmark.graphs import GraphDataset, get_spec, load_dataset
from benchmark.models import MODEL_REGISTRY, ModelConfig, default_config
from benchmark.models.config import DATASET_FIELDS
from benchmark.records import KINDS, GraphRecord
from benchmark.release.shards import read_records, write_records
from benchmark.versions import library_versions

TIMING_KEYS = frozenset({"wall_s", "step_ms"})
CONTENT_KEYS = frozenset({"seeds", "train_seed", "metamer_options", "train_options", "model_overrides", "protocol",
                          "validity", "validity_quantile", "references"})
STAGES = ("early", "late", "logits")
# Fields added after release v1: written into the manifest only when set, so v1's bytes stay.
_V2_FIELDS = {"protocol": "v1", "validity": "centred", "validity_quantile": 0.99, "reference_seeds": [],
              "reference_seeds_by_kind": {}, "references": {}, "stages": [], "graph_tasks": {}, "reverse": {}}
# What ``graph_tasks`` may override for graph-classification datasets (validity criterion and
# engine options); it changes graph sets only, so it is checked against finished graph sets only.
GRAPH_TASK_KEYS = ("validity", "validity_quantile", "metamer_options")
# The reverse direction's protocol (scores v2, DESIGN 4): on which datasets and kinds, with which
# metamer seeds, the evaluator generates metamers of a submitted model (at each of its stages, with
# the release's engine options) for the release's reference panel to judge. Stated in the manifest
# (``generator.config.reverse``), so every evaluation of the release uses the same protocol.
REVERSE_KEYS = ("datasets", "kinds", "seeds")
# Optional: engine options for the reverse direction only, over ``metamer_options`` (a protocol that fits
# the evaluation budget while the release's own sets optimise longer), and the stages it runs at.
REVERSE_OPTIONAL = ("metamer_options", "stages")
# Fields a release may pin per architecture; the rest come from the dataset and the task.
_PINNABLE = frozenset(f.name for f in fields(ModelConfig)) - {"arch", *DATASET_FIELDS}


@dataclass
class ReleaseConfig:
    """What a release contains; loaded from YAML (see ``scripts/release_v1.yaml``)."""

    name: str
    release: str
    version: str
    seeds: list[int]
    kinds: list[str]
    datasets: dict[str, dict]  # dataset -> {"models": [...], "kinds": {kind: [models]} (optional)}
    train_seed: int = 0
    metamer_options: dict = field(default_factory=dict)
    train_options: dict = field(default_factory=dict)  # TrainConfig overrides (epochs, patience, ...)
    # arch -> ModelConfig fields over the registry defaults. Pins a release's reference models to
    # the configs it was built with, so a later registry default does not change a rebuild.
    model_overrides: dict[str, dict] = field(default_factory=dict)
    # Release v2 (DESIGN 3). ``protocol``: "v1" or "v2" (validity criterion, matched far twins,
    # absolute near twins on graph tasks; see make_frozen_set). ``references``: name -> {"arch":
    # registry name, ModelConfig fields...}; a dataset's ``models`` may name these or plain
    # architectures. ``reference_seeds``: every reference is trained once per seed (seeds no
    # submission uses); empty: one reference per model, trained with ``train_seed`` (v1).
    # ``stages``: which stages get metamers (early = hidden layer 1, late = the last hidden layer,
    # logits); empty: the last hidden layer only (v1).
    protocol: str = "v1"
    validity: str = "centred"
    validity_quantile: float = 0.99
    # kind -> reference seeds, where a kind uses fewer than ``reference_seeds`` (size budget).
    reference_seeds_by_kind: dict[str, list[int]] = field(default_factory=dict)
    reference_seeds: list[int] = field(default_factory=list)
    references: dict[str, dict] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    # Graph-classification datasets: overrides of ``validity``, ``validity_quantile`` and
    # ``metamer_options`` (e.g. a distance criterion where a 2-class task's logits make Pearson r
    # degenerate, and metamers that match the model's readout; docs/validity_v2.md).
    graph_tasks: dict = field(default_factory=dict)
    # {"datasets": [...], "kinds": [...], "seeds": [...]}: see REVERSE_KEYS; {}: no reverse direction.
    reverse: dict = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> ReleaseConfig:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"release config not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise UserError(f"{path}: not valid YAML ({err})") from err
        valid = set(cls.__dataclass_fields__)
        if not isinstance(raw, dict):
            raise UserError(f"{path}: expected a mapping with keys {sorted(valid)}")
        unknown = sorted(set(raw) - valid)
        if unknown:
            raise UserError(f"{path}: unknown key(s) {unknown}; valid keys: {sorted(valid)}")
        config = cls(**raw)
        config.check()
        return config

    def check(self) -> None:
        for kind in self.kinds:
            if kind not in KINDS:
                raise unknown_choice("kind", kind, KINDS)
        for ref, spec in self.references.items():
            if not isinstance(spec, dict) or "arch" not in spec:
                raise UserError(f"references[{ref!r}] must be a mapping with an 'arch' (a registry name), got {spec!r}")
            unknown = sorted(set(spec) - _PINNABLE - {"arch"})
            if unknown:
                raise UserError(f"references[{ref!r}]: unknown field(s) {unknown}; valid: {sorted(_PINNABLE | {'arch'})}")
            if ref in MODEL_REGISTRY:
                raise UserError(f"references[{ref!r}]: the name is a registry architecture; pick another name")
        for name, entry in self.datasets.items():
            get_spec(name)
            for model in self.models_for(name, None):
                arch = self.arch_of(model)
                if arch not in MODEL_REGISTRY:
                    raise unknown_choice("model", arch, sorted(MODEL_REGISTRY) + sorted(self.references))
        for name in self.datasets:
            for kind in self.kinds_for(name):
                if kind not in KINDS:
                    raise unknown_choice(f"kind of datasets[{name!r}]", kind, KINDS, "kinds")
        for kind, seeds in self.reference_seeds_by_kind.items():
            if kind not in KINDS or not isinstance(seeds, list) or not seeds:
                raise UserError(f"reference_seeds_by_kind[{kind!r}] must map a kind ({', '.join(KINDS)}) to a "
                                f"non-empty list of seeds, got {seeds!r}")
        if not isinstance(self.graph_tasks, dict):
            raise UserError(f"graph_tasks must be a mapping with keys from {list(GRAPH_TASK_KEYS)}, got {self.graph_tasks!r}")
        unknown = sorted(set(self.graph_tasks) - set(GRAPH_TASK_KEYS))
        if unknown:
            raise UserError(f"graph_tasks: unknown key(s) {unknown}; valid: {list(GRAPH_TASK_KEYS)}")
        if "validity" in self.graph_tasks:
            from benchmark.metamers.validity import CRITERIA

            if self.graph_tasks["validity"] not in CRITERIA:
                raise unknown_choice("graph_tasks.validity", self.graph_tasks["validity"], CRITERIA, "validity criteria")
        if not isinstance(self.graph_tasks.get("metamer_options", {}), dict):
            raise UserError(f"graph_tasks.metamer_options must be a mapping of metamer options, "
                            f"got {self.graph_tasks['metamer_options']!r}")
        if self.reverse:
            if (not isinstance(self.reverse, dict) or not set(REVERSE_KEYS) <= set(self.reverse)
                    or set(self.reverse) - set(REVERSE_KEYS) - set(REVERSE_OPTIONAL)):
                raise UserError(f"reverse must be a mapping with the keys {list(REVERSE_KEYS)} and optionally "
                                f"{list(REVERSE_OPTIONAL)}, got {self.reverse!r}")
            overrides = self.reverse.get("metamer_options", {})
            if not isinstance(overrides, dict):
                raise UserError(f"reverse.metamer_options must be a mapping of metamer options, got {overrides!r}")
            from benchmark.metamers.options import MetamerOptions

            MetamerOptions.from_kwargs(**{**self.metamer_options, **overrides})  # names the unknown or bad option
            for stage in self.reverse.get("stages", []):
                if stage not in STAGES:
                    raise unknown_choice("reverse stage", stage, STAGES)
            for name in self.reverse["datasets"]:
                if name not in self.datasets:
                    raise unknown_choice("reverse dataset", name, self.datasets, "datasets of the release")
            for kind in self.reverse["kinds"]:
                if kind not in KINDS:
                    raise unknown_choice("reverse kind", kind, KINDS)
            seeds = self.reverse["seeds"]
            if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                                    for s in seeds):
                raise UserError(f"reverse.seeds must be a non-empty list of integers, got {seeds!r}")
        for stage in self.stages:
            if stage not in STAGES:
                raise unknown_choice("stage", stage, STAGES)
        if self.protocol not in ("v1", "v2"):
            raise unknown_choice("protocol", self.protocol, ("v1", "v2"))
        if self.protocol == "v1" and (self.stages or self.reference_seeds or self.references):
            raise UserError("stages, reference_seeds and references need protocol: v2")
        if not isinstance(self.model_overrides, dict):
            raise UserError(f"model_overrides must map an architecture to ModelConfig fields, got {self.model_overrides!r}")
        used = {self.arch_of(model) for _, model, _ in self.jobs()}
        for arch, overrides in self.model_overrides.items():
            if arch not in used:
                raise UserError(f"model_overrides names {arch!r}, which no dataset of the release uses; "
                                f"used: {sorted(used)}")
            if not isinstance(overrides, dict):
                raise UserError(f"model_overrides[{arch!r}] must be a mapping of ModelConfig fields, got {overrides!r}")
            unknown = sorted(set(overrides) - _PINNABLE)
            if unknown:
                raise UserError(f"model_overrides[{arch!r}]: unknown field(s) {unknown}; valid: {sorted(_PINNABLE)}")

    def arch_of(self, model: str) -> str:
        """The registry architecture of a dataset's model entry (a reference name or an architecture)."""
        return self.references[model]["arch"] if model in self.references else model

    def model_fields(self, model: str) -> dict:
        """ModelConfig fields over the registry defaults: the architecture's overrides, then the reference's."""
        spec = {k: v for k, v in self.references.get(model, {}).items() if k != "arch"}
        return {**self.model_overrides.get(self.arch_of(model), {}), **spec}

    def kinds_for(self, dataset: str) -> list[str]:
        """A dataset's kinds: ``datasets[d]["kinds"]`` when it is a list, else the release's."""
        kinds = self.datasets[dataset].get("kinds")
        return list(kinds) if isinstance(kinds, list) else list(self.kinds)

    def models_for(self, dataset: str, kind: str | None) -> list[str]:
        entry = self.datasets[dataset]
        kinds = entry.get("kinds", {})
        if kind is not None and isinstance(kinds, dict) and kind in kinds:
            return list(kinds[kind])
        return list(entry["models"])

    def jobs(self) -> list[tuple[str, str, str]]:
        return [(d, m, kind) for d in self.datasets for kind in self.kinds_for(d) for m in self.models_for(d, kind)]

    def set_options(self, task: str) -> dict:
        """Keyword arguments of ``make_frozen_set`` for a v2 set of a ``task`` ("node"/"graph") dataset."""
        out = {"protocol": self.protocol, "validity": self.validity, "validity_quantile": self.validity_quantile,
               **self.metamer_options}
        if task == "graph":
            graph = self.graph_tasks
            out.update({k: graph[k] for k in ("validity", "validity_quantile") if k in graph})
            out.update(graph.get("metamer_options", {}))
        return out

    def seeds_of_references(self) -> list[int]:
        return list(self.reference_seeds) or [self.train_seed]

    def to_dict(self) -> dict:
        # Fields added after a release was built appear only when set, so its manifest keeps its bytes.
        out = {k: getattr(self, k) for k in self.__dataclass_fields__
               if k not in _V2_FIELDS and (k != "model_overrides" or self.model_overrides)}
        out.update({k: getattr(self, k) for k, default in _V2_FIELDS.items() if getattr(self, k) != default})
        return out


@dataclass(frozen=True)
class Unit:
    """One shard of a release: a dataset, a reference model (name, seed), a kind and a stage.

    v1 units (no ``reference_seeds``) keep v1's names: ``checkpoints/<dataset>/<arch>``,
    ``data/<dataset>/<arch>-<kind>.parquet``. v2 units name the reference model
    ``<name>-s<seed>`` and add the stage to the shard's name.
    """

    dataset: str
    reference: str  # a reference name or an architecture
    arch: str
    seed: int
    kind: str
    layer: int | None  # None: the model's default (v1)
    stage: str | None
    v2: bool

    @property
    def reference_model(self) -> str:
        return f"{self.reference}-s{self.seed}" if self.v2 else self.reference

    @property
    def checkpoint(self) -> str:
        return f"checkpoints/{self.dataset}/{self.reference_model}"

    @property
    def shard(self) -> str:
        tail = f"-L{self.layer}" if self.v2 else ""
        return f"data/{self.dataset}/{self.reference_model}-{self.kind}{tail}.parquet"

    @property
    def state_key(self) -> str:
        tail = f"/L{self.layer}" if self.v2 else ""
        return f"set/{self.dataset}/{self.reference_model}/{self.kind}{tail}"


def stage_layers(stages: list[str], num_hidden: int) -> list[tuple[int, str]]:
    """``(layer, stage name)`` of each requested stage, in depth order, without duplicates.

    A model with one hidden layer has no early/late distinction: that layer is named ``hidden``.
    """
    layers: dict[int, str] = {}
    for stage in stages:
        layer = {"early": 1, "late": num_hidden, "logits": num_hidden + 1}[stage]
        layers[layer] = "logits" if stage == "logits" else ("hidden" if num_hidden == 1 else stage)
    return sorted(layers.items())


def _strip_timing(value):
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip_timing(v) for v in value]
    return value


def base_records(dataset: GraphDataset) -> list[GraphRecord]:
    """The base graph(s) of a dataset as stored in ``data/bases``: node task: the graph; graph task: test graphs."""
    from benchmark.metamers.structure import original_pairs, pairs_to_edge_index

    def canonical(edge_index, n):  # the engine's own edge ordering, so set originals match byte for byte
        e = pairs_to_edge_index(original_pairs(edge_index, n))
        return e if e.size(1) == edge_index.size(1) else edge_index

    if dataset.task == "node":
        g = dataset.data
        items = [(0, g, f"{dataset.name}/base", g.y)]
    else:
        items = [(i, dataset.graphs[i], f"{dataset.name}/base/g{i}", dataset.graphs[i].y.view(1))
                 for i in dataset.index("test").tolist()]
    out = []
    for index, g, rid, y in items:
        n = g.num_nodes
        ones = torch.ones(n, dtype=torch.bool)
        out.append(GraphRecord(id=rid, role="base", parent_id=None, dataset=dataset.name, task=dataset.task,
                               reference_model="", kind="", layer=0, seed=-1, graph_index=index, x=g.x.float(),
                               edge_index=canonical(g.edge_index, n), y=y.long().clone(), target=ones,
                               valid=torch.ones(1 if dataset.task == "graph" else n, dtype=torch.bool),
                               similarity=torch.ones(n), stats={}))
    return out


def checkpoint_key(unit: Unit) -> str:
    """State key of a unit's reference checkpoint (shared by every kind and stage of that reference)."""
    return f"checkpoint/{unit.dataset}/{unit.reference_model}"


def train_reference(config: ReleaseConfig, dataset: GraphDataset, unit: Unit, device: str = "cpu"):
    """Train a unit's reference model; returns ``(model on the CPU, card fields)`` for :func:`save_checkpoint`.

    A pure function of the config, the dataset and the unit, so any process (this one or a Ray
    worker, ``benchmark.executors.ray_build``) trains the same weights on the same CPU kernels
    (``device="cuda"`` trains on a GPU: reproducible only up to float rounding, see ``train_model``).
    """
    from benchmark.training import train_model

    model_config = default_config(unit.arch, dataset.num_features, dataset.num_classes, task=dataset.task,
                                  **config.model_fields(unit.reference))
    model, metrics = train_model(dataset, model_config, seed=unit.seed, device=device, **config.train_options)
    meta = {"dataset": unit.dataset, "seed": unit.seed, "metrics": _strip_timing(metrics)}
    if unit.v2:
        meta["reference"] = unit.reference
    return model, meta


def unit_shard(config: ReleaseConfig, dataset: GraphDataset, model, unit: Unit,
               bases: dict[str, GraphRecord]) -> tuple[bytes, dict]:
    """The shard bytes of one unit and its state entry (timing, layer, task, summary).

    ``model``: the unit's reference as loaded from its checkpoint; ``bases``: the records of the
    dataset's base shard as read back from ``data/bases``. Pure in its inputs (metamer seeds come
    from the config), which is what lets the in-process and the Ray build give the same bytes.
    """
    from benchmark.metamers import make_frozen_set, seed_summary
    from benchmark.release.shards import records_to_table, table_bytes

    t0 = time.perf_counter()
    options = config.set_options(dataset.task) if unit.v2 else config.metamer_options
    frozen_set = make_frozen_set(dataset, model, unit.reference_model, unit.kind, config.seeds, layer=unit.layer,
                                 progress=False, **options)
    for record in frozen_set.originals + frozen_set.variants:
        record.stats = _strip_timing(record.stats)
    data = table_bytes(records_to_table(frozen_set.originals + frozen_set.variants, references=bases))
    info = {"wall_s": round(time.perf_counter() - t0, 2), "layer": frozen_set.layer, "task": frozen_set.task,
            "summary": seed_summary(frozen_set)}
    if unit.v2:
        info.update(stage=unit.stage, num_hidden_layers=model.num_hidden_layers)
    return data, info


class BuildIncomplete(UserError):
    """A build stopped (by ``only``) before every set was built; re-running it goes on."""


class ReleaseBuilder:
    """Builds (or resumes) a release folder from a :class:`ReleaseConfig`."""

    def __init__(self, config: ReleaseConfig, out_dir: str | os.PathLike, progress: bool = True) -> None:
        self.config, self.root, self.progress = config, Path(out_dir), progress
        self.state_path = self.root / ".build" / "state.json"
        self.state = read_json(self.state_path) if self.state_path.is_file() else {}
        # Finished sets stay valid when only the dataset/model lists change; anything that changes a
        # set's content (seeds, options, training seed) needs a fresh folder.
        content = {k: v for k, v in config.to_dict().items() if k in CONTENT_KEYS}
        if self.state and self.state.get("content") != content:
            raise UserError(f"{self.root} holds a build with other {sorted(CONTENT_KEYS)}; build into another "
                            f"folder or delete {self.state_path.parent} and the outputs to start over")
        self.state["content"] = content
        # graph_tasks changes graph sets only: finished graph sets must have been built with it.
        graph_done = any(v.get("task") == "graph" for k, v in self.state["steps"].items() if k.startswith("set/")) \
            if "steps" in self.state else False
        if graph_done and self.state.get("graph_content", {}) != config.graph_tasks:
            raise UserError(f"{self.root} holds graph-task sets built with graph_tasks="
                            f"{self.state.get('graph_content', {})!r}, not {config.graph_tasks!r}; build into another "
                            f"folder or delete those sets' shards and state entries")
        self.state["graph_content"] = config.graph_tasks
        self.state["config"] = config.to_dict()
        self.state.setdefault("steps", {})
        self._datasets: dict[str, GraphDataset] = {}

    def save_state(self) -> None:
        atomic_write_json(self.state_path, self.state)

    def _done(self, key: str, path: Path) -> bool:
        step = self.state["steps"].get(key)
        return bool(step) and path.is_file() and sha256_file(path) == step["sha256"]

    def _record(self, key: str, path: Path, **info) -> None:
        self.state["steps"][key] = {"sha256": sha256_file(path), **info}
        self.save_state()

    def dataset(self, name: str) -> GraphDataset:
        if name not in self._datasets:
            self._datasets[name] = load_dataset(name)
        return self._datasets[name]

    def base_path(self, name: str) -> Path:
        return self.root / "data" / "bases" / f"{name}.parquet"

    def dataset_facts(self) -> dict[str, dict]:
        """Per-dataset facts for the manifest (v2): task, dimensions, test units and split source."""
        out = {}
        for name in self.config.datasets:
            d = self.dataset(name)
            out[name] = {"task": d.task, "num_features": d.num_features, "num_classes": d.num_classes,
                         "test_units": int(d.index("test").numel()), "split": get_spec(name).split}
        return out

    def units(self) -> list[Unit]:
        """Every shard of the release, in build order (dataset, kind, model, reference seed, stage)."""
        from benchmark.models import build_model

        cfg, v2 = self.config, bool(self.config.stages)
        jobs = cfg.jobs()
        if v2:  # model-major, so the first hours of a long build cover every kind of the first models
            models = {d: list(dict.fromkeys(m for dd, m, _ in jobs if dd == d)) for d in cfg.datasets}
            jobs = sorted(jobs, key=lambda j: (list(cfg.datasets).index(j[0]), models[j[0]].index(j[1]),
                                               cfg.kinds_for(j[0]).index(j[2])))
        out = []
        for name, model, kind in jobs:
            arch = cfg.arch_of(model)
            if not v2:
                out.append(Unit(name, model, arch, cfg.train_seed, kind, None, None, False))
                continue
            dataset = self.dataset(name)
            config = default_config(arch, dataset.num_features, dataset.num_classes, task=dataset.task,
                                    **cfg.model_fields(model))
            num_hidden = build_model(config).num_hidden_layers
            for seed in cfg.reference_seeds_by_kind.get(kind, cfg.seeds_of_references()):
                for layer, stage in stage_layers(cfg.stages, num_hidden):
                    out.append(Unit(name, model, arch, seed, kind, layer, stage, True))
        return out

    def checkpoint(self, unit: Unit):
        folder = self.root / unit.checkpoint
        key = checkpoint_key(unit)
        if self._done(key, folder / CARD_NAME):
            return load_checkpoint(folder)[0]
        start = time.perf_counter()
        model, meta = train_reference(self.config, self.dataset(unit.dataset), unit)
        save_checkpoint(model, folder, meta)
        self._record(key, folder / CARD_NAME, wall_s=round(time.perf_counter() - start, 2))
        return load_checkpoint(folder)[0]

    def checkpoint_done(self, unit: Unit) -> bool:
        """Whether the unit's reference checkpoint is written and its card hashes as recorded."""
        return self._done(checkpoint_key(unit), self.root / unit.checkpoint / CARD_NAME)

    def record_checkpoint(self, unit: Unit, files: dict[str, bytes], wall_s: float) -> None:
        """Write a checkpoint made elsewhere (``{file name: bytes}`` of :func:`save_checkpoint`'s
        folder) file by file atomically, the card last, and record it: a checkpoint counts as done
        only once its card is written and recorded, so a half-written folder is retrained."""
        folder = self.root / unit.checkpoint
        if set(files) != {WEIGHTS_NAME, CARD_NAME}:
            raise UserError(f"checkpoint {unit.checkpoint}: expected files {sorted([WEIGHTS_NAME, CARD_NAME])}, "
                            f"got {sorted(files)}")
        atomic_write_bytes(folder / WEIGHTS_NAME, files[WEIGHTS_NAME])
        atomic_write_bytes(folder / CARD_NAME, files[CARD_NAME])
        self._record(checkpoint_key(unit), folder / CARD_NAME, wall_s=round(wall_s, 2))

    def write_bases(self) -> None:
        """Write (or keep) ``data/bases/<dataset>.parquet`` of every dataset: the first step of a build."""
        for name in self.config.datasets:
            path = self.base_path(name)
            if not self._done(f"base/{name}", path):
                write_records(path, base_records(self.dataset(name)))
                self._record(f"base/{name}", path)

    def pending(self) -> list[Unit]:
        """The units whose shard is not built yet (missing, or not hashing to its recorded SHA-256)."""
        return [u for u in self.units() if not self._done(u.state_key, self.root / u.shard)]

    def record_unit(self, unit: Unit, data: bytes, info: dict) -> None:
        """Write a finished unit's shard atomically and record it (with ``info``) in the state."""
        shard = self.root / unit.shard
        atomic_write_bytes(shard, data)  # a shard is whole or absent; the state names it only after
        self._record(unit.state_key, shard, **info)

    def build(self, only: int | None = None, minutes: float | None = None) -> Path:
        """Build every unfinished unit, then the card and manifest.

        ``only`` / ``minutes``: start no new unit after that many new units / minutes, and raise
        :class:`BuildIncomplete` (a build longer than one sitting is committed and resumed in parts:
        finished shards, checkpoints and ``.build/state.json`` are all it needs).
        """
        start = time.perf_counter()
        self.write_bases()
        units = self.units()
        done_now = 0
        bar = tqdm(units, desc="build-release", disable=not self.progress)
        for unit in bar:
            bar.set_postfix_str(unit.state_key[4:])
            if self._done(unit.state_key, self.root / unit.shard):
                continue
            if (only is not None and done_now >= only) or (minutes is not None and time.perf_counter() - start > 60 * minutes):
                break
            model = self.checkpoint(unit)
            bases = {r.id: r for r in read_records(self.base_path(unit.dataset))}
            data, info = unit_shard(self.config, self.dataset(unit.dataset), model, unit, bases)
            self.record_unit(unit, data, info)
            done_now += 1
        self.state["last_run_s"] = round(time.perf_counter() - start, 2)
        self.save_state()
        return self.complete()

    def complete(self) -> Path:
        """Assemble card and manifest when every unit's shard is built, else raise :class:`BuildIncomplete`."""
        units = self.units()
        missing = [u.state_key for u in units if not self._done(u.state_key, self.root / u.shard)]
        if missing:
            raise BuildIncomplete(f"{len(missing)} of {len(units)} sets are not built yet (next: {missing[0]}); "
                                  f"run the same build command again to go on (progress is kept in {self.state_path})")
        self.finish()
        return self.root

    def finish(self) -> dict:
        """Write the data card and the manifest from the finished steps."""
        from benchmark.release.card import write_card
        from benchmark.release.manifest import write_manifest

        steps = self.state["steps"]
        sets, summaries = [], {}
        for unit in self.units():
            step = steps[unit.state_key]
            entry = {"key": f"{unit.dataset}/{unit.reference_model}/{unit.kind}/L{step['layer']}", "dataset": unit.dataset,
                     "task": step["task"], "reference_model": unit.reference_model, "kind": unit.kind,
                     "layer": step["layer"], "shard": unit.shard, "checkpoint": unit.checkpoint,
                     "seeds": list(self.config.seeds)}
            if unit.v2:
                from benchmark.release.card import set_verdict

                entry.update(reference={"name": unit.reference, "arch": unit.arch, "seed": unit.seed},
                             stage=step["stage"], num_hidden_layers=step["num_hidden_layers"],
                             ranked=set_verdict(step.get("summary", {}))["ranked"])
            sets.append(entry)
            summaries[entry["key"]] = step.get("summary", {})
        self.state["build"] = {"wall_s": round(sum(s.get("wall_s", 0.0) for s in steps.values()), 1),
                               "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                          f"{torch.get_num_threads()} torch threads"}
        self.save_state()
        write_card(self.root, self.config, sets, summaries)
        header = {"name": self.config.name, "release": self.config.release, "version": self.config.version,
                  "bases": {name: f"data/bases/{name}.parquet" for name in self.config.datasets}, "sets": sets,
                  **({"datasets": self.dataset_facts()} if self.config.protocol == "v2" else {}),
                  "generator": {"version": __version__, "config": self.config.to_dict()},
                  "library_versions": library_versions()}
        return write_manifest(self.root, header)
