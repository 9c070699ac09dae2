"""``build-release --executor ray``: a release's units as Ray tasks, written and recorded by the driver.

A release is a list of units (:meth:`ReleaseBuilder.units`: dataset, reference model and seed,
kind, stage), each one shard, plus one checkpoint per reference model. This module runs them as
Ray tasks and keeps every guarantee of the in-process build (:mod:`benchmark.release.build`):

- **Same bytes.** A task runs the very functions the in-process build runs
  (:func:`~benchmark.release.build.train_reference`, :func:`~benchmark.release.build.unit_shard`)
  on the same inputs (the checkpoint's files, the base shard's bytes as written), so on the same
  CPU kernels and library versions the shards, checkpoints, card and manifest are byte-identical
  (``tests/test_ray.py`` checks it). The card and manifest are assembled by the driver in a final
  step, once every shard is recorded.
- **Only the driver writes.** Tasks return bytes; the driver writes each file atomically
  (:func:`benchmark.files.atomic_write_bytes`: a shard is whole or absent) and records its SHA-256
  in ``.build/state.json`` after the write. Workers therefore need no shared file system, and a
  file is trusted only when the state names it and it hashes right (:meth:`ReleaseBuilder._done`).
- **Resumable.** A unit whose shard exists and hashes right is never submitted. A task whose worker
  process or node dies (``WorkerCrashedError``, ``NodeDiedError``, ``OutOfMemoryError``, ...) is
  resubmitted, up to ``max_attempts`` tries in all; every other unit keeps its result. Tasks are
  submitted with ``max_retries=0`` so that this loop, not Ray, counts the tries, and each unit's
  state entry records ``attempts``. An error raised by the unit's own code is not retried: running
  units finish and are recorded, no new unit starts, and the error is raised naming the unit.
- **Bounded.** About as many tasks as the cluster has slots are in flight, so ``only`` and
  ``minutes`` (``--max-sets``, ``--max-minutes``) stop the build as promptly as in process.

Each task asks Ray for ``cpus`` CPUs (and runs torch with that many threads), ``memory`` bytes
(default: :func:`unit_memory`, an estimate from the dataset's size) and one GPU when ``device`` is
``cuda``. On ``cuda`` the reference models are trained on the GPU; metamer generation runs on the
CPU (frozen sets are built on the CPU today).
"""
from __future__ import annotations

import fcntl
import io
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmark.checkpoints import CARD_NAME, WEIGHTS_NAME
from benchmark.errors import UserError
from benchmark.files import sha256_bytes
from benchmark.release.build import (
    ReleaseBuilder,
    Unit,
    checkpoint_key,
    train_reference,
    unit_shard,
)

# Per-task memory estimate (bytes): a worker with torch, PyG and its dataset loaded (measured
# 590-610 MB), plus what the metamer engine keeps per feature value (measured 57-77 B: Cora's
# feature unit, an ogbn-arxiv-sized continuous unit) and, for structure units, per edge and
# candidate edge (measured 965 B on the arxiv-sized graph). Rounded up; docs/ray.md, "Memory per unit".
WORKER_BYTES = 1 << 30
BYTES_PER_FEATURE_VALUE = 96
BYTES_PER_EDGE = 256
BYTES_PER_CANDIDATE_EDGE = 1200
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class TaskRequest:
    """What each task asks Ray for."""

    cpus: float = 1.0
    memory: int | None = None  # bytes; None: :func:`unit_memory` of the unit's dataset
    device: str = "cpu"

    @property
    def gpus(self) -> float:
        return 1.0 if self.device.startswith("cuda") else 0.0

    def check(self) -> None:
        if self.cpus <= 0:
            raise UserError(f"cpus per unit must be > 0, got {self.cpus}")
        if self.memory is not None and self.memory <= 0:
            raise UserError(f"memory per unit must be > 0 bytes, got {self.memory}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise UserError(f"device {self.device!r}: a Ray build runs on cpu or cuda")


def dataset_size(dataset) -> tuple[int, int, int]:
    """``(nodes, features, edges)`` a unit of ``dataset`` works on at once: the graph of a node
    task, the union of the test graphs of a graph task (the engine batches them)."""
    if dataset.task == "node":
        g = dataset.data
        return int(g.num_nodes), int(dataset.num_features), int(g.edge_index.size(1))
    graphs = [dataset.graphs[i] for i in dataset.index("test").tolist()]
    return (sum(int(g.num_nodes) for g in graphs), int(dataset.num_features),
            sum(int(g.edge_index.size(1)) for g in graphs))


def unit_memory(kind: str, nodes: int, features: int, edges: int, candidate_ratio: float) -> int:
    """Memory request of one unit (bytes) of ``kind`` on a graph of that size; see the constants above.

    ``edges``: directed edges (PyG's ``edge_index`` columns); a structure unit optimises over the
    edges and ``candidate_ratio`` sampled non-edges per edge.
    """
    values = BYTES_PER_FEATURE_VALUE * nodes * features
    if kind == "structure":
        return WORKER_BYTES + values // 4 + int(BYTES_PER_CANDIDATE_EDGE * edges * (1 + candidate_ratio))
    return WORKER_BYTES + values + BYTES_PER_EDGE * edges


# ---------------------------------------------------------------------------------------------
# What runs in a worker. Module-level functions, so Ray ships them by reference to this module.

_DATASETS: dict = {}  # a reused worker keeps the datasets it loaded


def _dataset(name: str):
    """Load a dataset once per worker process; the node's cache is filled under a file lock, so
    two workers of one node never process the same raw files at the same time."""
    if name not in _DATASETS:
        from benchmark.graphs import default_cache_dir, load_dataset

        cache = default_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / f".{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _DATASETS[name] = load_dataset(name)
    return _DATASETS[name]


def _start_task(cpus: float) -> float:
    import torch

    from benchmark.executors.ray_cluster import peak_rss_reset

    torch.set_num_threads(max(1, int(cpus)))
    peak_rss_reset()
    return time.perf_counter()


def _task_facts(start: float) -> dict:
    import socket

    from benchmark.executors.ray_cluster import peak_rss_mb

    return {"task_s": round(time.perf_counter() - start, 3), "peak_rss_mb": peak_rss_mb(), "pid": os.getpid(),
            "host": socket.gethostname()}


def train_task(config, unit: Unit, device: str, cpus: float) -> dict:
    """Train a unit's reference; returns the checkpoint folder's files as bytes."""
    from benchmark.checkpoints import save_checkpoint

    start = _start_task(cpus)
    model, meta = train_reference(config, _dataset(unit.dataset), unit, device=device)
    with tempfile.TemporaryDirectory(prefix="metamer-bench-ckpt-") as tmp:
        save_checkpoint(model, tmp, meta)
        files = {name: (Path(tmp) / name).read_bytes() for name in (WEIGHTS_NAME, CARD_NAME)}
    return {"files": files, "wall_s": time.perf_counter() - start, **_task_facts(start)}


def unit_task(config, unit: Unit, checkpoint: dict, base: bytes, cpus: float) -> dict:
    """Build one shard from its checkpoint's files and its dataset's base shard; returns the bytes."""
    import pyarrow.parquet as pq

    from benchmark.checkpoints import load_checkpoint
    from benchmark.release.shards import table_to_records

    start = _start_task(cpus)
    with tempfile.TemporaryDirectory(prefix="metamer-bench-ckpt-") as tmp:
        for name, data in checkpoint.items():
            (Path(tmp) / name).write_bytes(data)
        model = load_checkpoint(tmp)[0]
    bases = {r.id: r for r in table_to_records(pq.read_table(io.BytesIO(base)), source=f"base of {unit.dataset}")}
    data, info = unit_shard(config, _dataset(unit.dataset), model, unit, bases)
    return {"data": data, "sha256": sha256_bytes(data), "info": info, **_task_facts(start)}


# ---------------------------------------------------------------------------------------------
# The driver.

def build_with_ray(builder: ReleaseBuilder, request: TaskRequest = TaskRequest(), address: str | None = None,
                   only: int | None = None, minutes: float | None = None, num_cpus: int | None = None,
                   max_attempts: int = MAX_ATTEMPTS, log=None) -> Path:
    """Build (or resume) ``builder``'s release with its units as Ray tasks; see the module docstring.

    ``address``: a running cluster (``HOST:PORT`` or ``auto``); None starts a local instance with
    ``num_cpus`` slots. ``only``/``minutes``: as :meth:`ReleaseBuilder.build` (start no new unit
    after that many new units / minutes, then raise ``BuildIncomplete``). ``log``: a callable taking
    one line per event (submitted, finished, retried), e.g. ``print``; None: quiet.
    """
    from benchmark.executors.ray_cluster import check_request, ray_session, slots, system_failure, task_error

    request.check()
    if max_attempts < 1:
        raise UserError(f"max_attempts must be >= 1, got {max_attempts}")
    say = log or (lambda line: None)
    start = time.perf_counter()
    builder.write_bases()  # in the driver: small, and every unit task needs the bytes
    queue = builder.pending()
    if not queue:  # every shard is built and hashes right: nothing for Ray to do
        return builder.complete()
    from benchmark.metamers.options import MetamerOptions

    ratio = float(builder.config.metamer_options.get("candidate_ratio", MetamerOptions.candidate_ratio))
    # Per (dataset, kind); a checkpoint's training asks for its dataset's feature-kind figure.
    memory = {(u.dataset, kind): request.memory or unit_memory(kind, *dataset_size(builder.dataset(u.dataset)), ratio)
              for u in queue for kind in (u.kind, "feature")}
    with ray_session(address, num_cpus) as ray:
        for (name, kind), need in memory.items():
            check_request(ray, request.cpus, request.gpus, need, f"{kind} unit of {name}")
        window = slots(ray, request.cpus, request.gpus)
        remote_train, remote_unit = ray.remote(train_task), ray.remote(unit_task)
        base_refs = {name: ray.put(builder.base_path(name).read_bytes()) for name in {u.dataset for u in queue}}
        checkpoint_refs: dict[str, object] = {}
        in_flight: dict[object, tuple[str, Unit, int]] = {}  # ref -> (what, unit, attempt)
        submitted: dict[object, float] = {}  # ref -> when it was submitted (for the overhead figures)
        training: set[str] = set()
        started = 0
        failure: tuple[Unit, BaseException] | None = None

        def options(unit: Unit, name: str, kind: str) -> dict:
            return {"num_cpus": request.cpus, "num_gpus": request.gpus, "memory": memory[(unit.dataset, kind)],
                    "max_retries": 0, "name": name}

        def submit(what: str, unit: Unit, attempt: int) -> None:
            if what == "train":
                ref = remote_train.options(**options(unit, checkpoint_key(unit), "feature")).remote(
                    builder.config, unit, request.device, request.cpus)
            else:
                ref = remote_unit.options(**options(unit, unit.state_key, unit.kind)).remote(
                    builder.config, unit, checkpoint_refs[checkpoint_key(unit)], base_refs[unit.dataset], request.cpus)
            in_flight[ref] = (what, unit, attempt)
            submitted[ref] = time.perf_counter()
            say(f"{'retry' if attempt > 1 else 'start'} {checkpoint_key(unit) if what == 'train' else unit.state_key}"
                + (f" (attempt {attempt})" if attempt > 1 else ""))

        def stopping() -> bool:
            return (failure is not None or (only is not None and started >= only)
                    or (minutes is not None and time.perf_counter() - start > 60 * minutes))

        while True:
            # With ``only``, look no further than the units it allows (no checkpoint is trained for more).
            for unit in list(queue if only is None else queue[:max(0, only - started)]):
                if len(in_flight) >= window or stopping():
                    break
                key = checkpoint_key(unit)
                if builder.checkpoint_done(unit):
                    if key not in checkpoint_refs:
                        folder = builder.root / unit.checkpoint
                        checkpoint_refs[key] = ray.put({name: (folder / name).read_bytes()
                                                        for name in (WEIGHTS_NAME, CARD_NAME)})
                    queue.remove(unit)
                    submit("unit", unit, 1)
                    started += 1
                elif key not in training:
                    training.add(key)
                    submit("train", unit, 1)
            if not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            what, unit, attempt = in_flight.pop(ready[0])
            since = submitted.pop(ready[0])
            try:
                out = ray.get(ready[0])
            except Exception as err:  # noqa: BLE001 - sorted into retry / give up below
                name = checkpoint_key(unit) if what == "train" else unit.state_key
                if system_failure(ray, err) and attempt < max_attempts:
                    say(f"lost {name} ({type(err).__name__}); resubmitting")
                    submit(what, unit, attempt + 1)
                    continue
                if failure is None:
                    failure = (unit, task_error(ray, err) if not system_failure(ray, err) else UserError(
                        f"{name}: its Ray task failed {attempt} time(s), last with {type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}; finished units are kept, run the "
                        "same build again to go on"))
                    say(f"failed {name}: {type(failure[1]).__name__}: {failure[1]}")
                continue
            if what == "train":
                builder.record_checkpoint(unit, out["files"], out["wall_s"])
                say(f"done {checkpoint_key(unit)} ({out['task_s']:.1f} s)")
            else:
                if sha256_bytes(out["data"]) != out["sha256"]:
                    raise UserError(f"{unit.state_key}: the shard's bytes changed between the worker and the "
                                    "driver (SHA-256 differs); nothing was written")
                # round_trip_s - task_s: what Ray adds to a unit (arguments, scheduling, result), docs/ray.md
                info = {**out["info"], "attempts": attempt, "task_s": out["task_s"], "peak_rss_mb": out["peak_rss_mb"],
                        "round_trip_s": round(time.perf_counter() - since, 3), "threads": max(1, int(request.cpus)),
                        "executor": "ray"}
                builder.record_unit(unit, out["data"], info)
                say(f"done {unit.state_key} ({out['task_s']:.1f} s)")
        builder.state["last_run_s"] = round(time.perf_counter() - start, 2)
        builder.save_state()
    if failure is not None:
        unit, err = failure
        if isinstance(err, BaseException) and hasattr(err, "add_note"):
            err.add_note(f"while building {unit.state_key} on Ray; finished units are kept in {builder.state_path}")
        raise err
    return builder.complete()
