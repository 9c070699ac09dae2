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
from benchmark.checkpoints import CARD_NAME, load_checkpoint, save_checkpoint
from benchmark.errors import UserError, unknown_choice
from benchmark.files import atomic_write_json, read_json, sha256_file
from benchmark.graphs import GraphDataset, get_spec, load_dataset
from benchmark.models import MODEL_REGISTRY, ModelConfig, default_config
from benchmark.models.config import DATASET_FIELDS
from benchmark.release.records import KINDS, GraphRecord
from benchmark.release.shards import read_records, write_records
from benchmark.versions import library_versions

TIMING_KEYS = frozenset({"wall_s", "step_ms"})
CONTENT_KEYS = frozenset({"seeds", "train_seed", "metamer_options", "train_options", "model_overrides"})
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
        for name, entry in self.datasets.items():
            get_spec(name)
            for arch in self.models_for(name, None):
                if arch not in MODEL_REGISTRY:
                    raise unknown_choice("model", arch, MODEL_REGISTRY)
        if not isinstance(self.model_overrides, dict):
            raise UserError(f"model_overrides must map an architecture to ModelConfig fields, got {self.model_overrides!r}")
        used = {arch for _, arch, _ in self.jobs()}
        for arch, overrides in self.model_overrides.items():
            if arch not in used:
                raise UserError(f"model_overrides names {arch!r}, which no dataset of the release uses; "
                                f"used: {sorted(used)}")
            if not isinstance(overrides, dict):
                raise UserError(f"model_overrides[{arch!r}] must be a mapping of ModelConfig fields, got {overrides!r}")
            unknown = sorted(set(overrides) - _PINNABLE)
            if unknown:
                raise UserError(f"model_overrides[{arch!r}]: unknown field(s) {unknown}; valid: {sorted(_PINNABLE)}")

    def models_for(self, dataset: str, kind: str | None) -> list[str]:
        entry = self.datasets[dataset]
        if kind is not None and kind in entry.get("kinds", {}):
            return list(entry["kinds"][kind])
        return list(entry["models"])

    def jobs(self) -> list[tuple[str, str, str]]:
        return [(d, arch, kind) for d in self.datasets for kind in self.kinds for arch in self.models_for(d, kind)]

    def to_dict(self) -> dict:
        # model_overrides only when set: releases built before the field existed keep their card.
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "model_overrides" or self.model_overrides}


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
        self.state["config"] = config.to_dict()
        self.state.setdefault("steps", {})
        self._datasets: dict[str, GraphDataset] = {}

    def _save_state(self) -> None:
        atomic_write_json(self.state_path, self.state)

    def _done(self, key: str, path: Path) -> bool:
        step = self.state["steps"].get(key)
        return bool(step) and path.is_file() and sha256_file(path) == step["sha256"]

    def _record(self, key: str, path: Path, **info) -> None:
        self.state["steps"][key] = {"sha256": sha256_file(path), **info}
        self._save_state()

    def dataset(self, name: str) -> GraphDataset:
        if name not in self._datasets:
            self._datasets[name] = load_dataset(name)
        return self._datasets[name]

    def base_path(self, name: str) -> Path:
        return self.root / "data" / "bases" / f"{name}.parquet"

    def checkpoint(self, name: str, arch: str):
        folder = self.root / "checkpoints" / name / arch
        key = f"checkpoint/{name}/{arch}"
        if self._done(key, folder / CARD_NAME):
            return load_checkpoint(folder)[0]
        from benchmark.training import train_model

        dataset = self.dataset(name)
        config = default_config(arch, dataset.num_features, dataset.num_classes, task=dataset.task,
                                **self.config.model_overrides.get(arch, {}))
        start = time.perf_counter()
        model, metrics = train_model(dataset, config, seed=self.config.train_seed, **self.config.train_options)
        save_checkpoint(model, folder, {"dataset": name, "seed": self.config.train_seed,
                                        "metrics": _strip_timing(metrics)})
        self._record(key, folder / CARD_NAME, wall_s=round(time.perf_counter() - start, 2))
        return load_checkpoint(folder)[0]

    def build(self) -> Path:
        from benchmark.metamers import make_frozen_set, seed_summary

        start = time.perf_counter()
        for name in self.config.datasets:
            path = self.base_path(name)
            if not self._done(f"base/{name}", path):
                write_records(path, base_records(self.dataset(name)))
                self._record(f"base/{name}", path)
        jobs = self.config.jobs()
        bar = tqdm(jobs, desc="build-release", disable=not self.progress)
        for name, arch, kind in bar:
            bar.set_postfix_str(f"{name}/{arch}/{kind}")
            shard = self.root / "data" / name / f"{arch}-{kind}.parquet"
            key = f"set/{name}/{arch}/{kind}"
            if self._done(key, shard):
                continue
            model = self.checkpoint(name, arch)
            t0 = time.perf_counter()
            frozen_set = make_frozen_set(self.dataset(name), model, arch, kind, self.config.seeds, progress=False,
                                         **self.config.metamer_options)
            for record in frozen_set.originals + frozen_set.variants:
                record.stats = _strip_timing(record.stats)
            bases = {r.id: r for r in read_records(self.base_path(name))}
            write_records(shard, frozen_set.originals + frozen_set.variants, references=bases)
            self._record(key, shard, wall_s=round(time.perf_counter() - t0, 2), layer=frozen_set.layer,
                         task=frozen_set.task, summary=seed_summary(frozen_set))
        self.state["last_run_s"] = round(time.perf_counter() - start, 2)
        self._save_state()
        self.finish()
        return self.root

    def finish(self) -> dict:
        """Write the data card and the manifest from the finished steps."""
        from benchmark.release.card import write_card
        from benchmark.release.manifest import write_manifest

        steps = self.state["steps"]
        sets = []
        for name, arch, kind in self.config.jobs():
            step = steps[f"set/{name}/{arch}/{kind}"]
            sets.append({"key": f"{name}/{arch}/{kind}/L{step['layer']}", "dataset": name, "task": step["task"],
                         "reference_model": arch, "kind": kind, "layer": step["layer"],
                         "shard": f"data/{name}/{arch}-{kind}.parquet", "checkpoint": f"checkpoints/{name}/{arch}",
                         "seeds": list(self.config.seeds)})
        self.state["build"] = {"wall_s": round(sum(s.get("wall_s", 0.0) for s in steps.values()), 1),
                               "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                          f"{torch.get_num_threads()} torch threads"}
        self._save_state()
        write_card(self.root, self.config, sets, {k: v.get("summary", {}) for k, v in steps.items()})
        header = {"name": self.config.name, "release": self.config.release, "version": self.config.version,
                  "bases": {name: f"data/bases/{name}.parquet" for name in self.config.datasets}, "sets": sets,
                  "generator": {"version": __version__, "config": self.config.to_dict()},
                  "library_versions": library_versions()}
        return write_manifest(self.root, header)
