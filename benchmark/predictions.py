"""The predictions route: score a model that cannot be submitted as weights or as a program.

Contract (README, "Prediction-only entries"):

1. ``metamer-bench predict-template --release v1 --out DIR`` writes ``DIR/template.json``
   (:func:`write_template`): the release identity, each dataset's task, feature and class counts,
   and one row per record to predict (``id``, ``dataset``, ``task``, ``role``, ``num_nodes``,
   ``num_edges``, ``shape``: ``[num_outputs, num_classes]``, ``num_outputs`` being the record's
   node count for node tasks, 1 for graph tasks). The graphs themselves come from the release:
   :func:`prediction_inputs` yields ``(record_id, torch_geometric.data.Data)`` in template order.
2. The predictions file is a ``.safetensors`` file with one tensor per record id, shape
   ``[num_seeds, num_outputs, num_classes]``, dtype float16, bfloat16, float32 or float64, every
   value finite; metadata ``type`` (``logits`` or ``probs``), ``seeds`` (a JSON list of distinct
   training seeds, the order of the first axis) and optionally ``model`` (a label). Write it with
   :func:`write_predictions`: it copies each output into its own contiguous buffer, so outputs that
   share memory (views of one tensor, one tensor under two ids) are fine; ``safetensors.torch.save_file``
   refuses those.
3. ``metamer-bench score-predictions PRED.safetensors --name ENTRY`` (:func:`score_predictions`)
   checks the file from its header before any tensor is read (:func:`check_predictions_header`:
   header length, names, dtypes, shapes, byte ranges, the file's length; the largest file accepted
   is what the template's shapes need in float64), then loads it (pickles refused, NaN/Inf refused),
   scores it with :meth:`benchmark.evaluate.Evaluator.eval_predictions` and returns a results
   document marked ``prediction_only: true`` with tier ``self-reported``.

Prediction-only entries are scored in the forward direction only (the model's outputs on the
frozen metamers of the reference models); the reverse direction (metamers generated against the
submitted model) needs the model itself and is never computed for them. The leaderboard shows them
as ``prediction-only``, never as ``re-run``. A results file ranks only beside
``submissions/<entry>/predictions.safetensors`` holding the bytes it was scored from
(:mod:`benchmark.leaderboard.provenance`).

Every error names the field (``predictions.outputs['<id>'].shape[1]``, ``predictions.seeds``)
and the valid options.
"""
from __future__ import annotations

import json
import math
import os
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from benchmark.errors import IntegrityError, UserError
from benchmark.files import atomic_write_bytes, atomic_write_json, sha256_file

TEMPLATE_NAME = "template.json"
TEMPLATE_FORMAT = "metamer-bench predictions template 1"
PREDICTIONS_FILE = "predictions.safetensors"  # the file a prediction-only entry folder holds
PREDICTION_TYPES = ("logits", "probs")
MAX_SEEDS = 20  # as the submission card's schema
# safetensors dtype -> bytes per value, for the dtypes the evaluator accepts
DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
_HEADER_SLACK = 1 << 20  # header bytes allowed beyond what the record names need
_MAX_LISTED = 8


def _where(record_id: str) -> str:
    from benchmark.schemas import json_path

    return json_path("predictions", ["outputs", record_id])


# -- The template ---------------------------------------------------------------------------------------------------

def expected_shapes(evaluator) -> dict[str, tuple[int, int]]:
    """``{record_id: (num_outputs, num_classes)}`` of every record the evaluator scores."""
    out = {}
    for record_id, record in sorted(evaluator.records.items()):
        dataset = evaluator._dataset_of[record_id]
        outputs = record.num_nodes if evaluator.tasks[dataset] == "node" else 1
        out[record_id] = (outputs, evaluator.num_classes[dataset])
    return out


def template(evaluator) -> dict:
    """The template document (see the module docstring) of an :class:`~benchmark.evaluate.Evaluator`."""
    shapes = expected_shapes(evaluator)
    records = []
    for record_id, (outputs, classes) in shapes.items():
        record = evaluator.records[record_id]
        dataset = evaluator._dataset_of[record_id]
        records.append({"id": record_id, "dataset": dataset, "task": evaluator.tasks[dataset], "role": record.role,
                        "parent_id": record.parent_id, "num_nodes": record.num_nodes,
                        "num_edges": int(record.edge_index.size(1)), "shape": [outputs, classes]})
    datasets = {d: {"task": evaluator.tasks[d], "num_features": evaluator.num_features[d],
                    "num_classes": evaluator.num_classes[d],
                    "records": sum(1 for r in records if r["dataset"] == d)} for d in evaluator.datasets}
    return {
        "format": TEMPLATE_FORMAT,
        "release": dict(evaluator.release_info) if evaluator.release_info else None,
        "predictions_file": {
            "container": "safetensors (one tensor per record id; write it with "
                         "benchmark.predictions.write_predictions)",
            "tensor_shape": "[num_seeds, shape[0], shape[1]] for each record's shape below",
            "dtypes": ["float16", "bfloat16", "float32", "float64"],
            "metadata": {"type": list(PREDICTION_TYPES), "seeds": "JSON list of distinct training seeds, in the "
                         "order of the first axis", "model": "optional label of the architecture"},
            "inputs": "benchmark.predictions.prediction_inputs(release) yields (record_id, PyG Data) in this order",
        },
        "datasets": datasets,
        "records": records,
    }


def write_template(evaluator, out_dir: str | os.PathLike) -> Path:
    """Write ``<out_dir>/template.json``; returns its path."""
    path = Path(out_dir) / TEMPLATE_NAME
    atomic_write_json(path, template(evaluator))
    return path


def prediction_inputs(release: str | os.PathLike | None = None, datasets: Sequence[str] | None = None,
                      evaluator=None) -> Iterator[tuple[str, object]]:
    """``(record_id, Data)`` for every record to predict, in template order (sorted ids).

    ``Data`` has ``x``, ``edge_index`` and ``num_nodes`` only: labels and masks stay with the
    evaluator. Pass an ``evaluator`` to reuse one already loaded.
    """
    from torch_geometric.data import Data

    if evaluator is None:
        from benchmark.evaluate import Evaluator

        evaluator = Evaluator(release if release is not None else "v1", datasets=datasets)
    for record_id in sorted(evaluator.records):
        record = evaluator.records[record_id]
        yield record_id, Data(x=record.x, edge_index=record.edge_index, num_nodes=record.num_nodes)


# -- Writing a predictions file -------------------------------------------------------------------------------------

def write_predictions(path: str | os.PathLike, outputs: Mapping[str, Tensor], seeds: Sequence[int],
                      kind: str = "logits", model: str | None = None) -> Path:
    """Write a predictions file (see the module docstring).

    ``outputs[record_id]`` is ``[num_seeds, num_outputs, num_classes]``. Each tensor is detached,
    moved to the CPU and copied into its own buffer, so tensors that share memory are written
    as independent tensors (``safetensors.torch.save_file`` refuses shared storage).
    """
    from safetensors.torch import save

    if kind not in PREDICTION_TYPES:
        raise UserError(f"predictions type {kind!r}; valid types: {', '.join(PREDICTION_TYPES)}")
    seeds = [int(s) for s in seeds]
    tensors = {}
    for record_id, value in outputs.items():
        if not isinstance(value, Tensor):
            value = torch.as_tensor(value)
        tensors[str(record_id)] = value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
    metadata = {"type": kind, "seeds": json.dumps(seeds)}
    if model is not None:
        metadata["model"] = str(model)
    path = Path(path)
    atomic_write_bytes(path, save(dict(sorted(tensors.items())), metadata=metadata))
    return path


# -- Checking a predictions file before reading it ------------------------------------------------------------------

def _raise(problems: list[str], what: str) -> None:
    from benchmark.schemas import raise_problems

    raise_problems(problems, what, IntegrityError)


def max_file_bytes(shapes: Mapping[str, tuple[int, int]], num_seeds: int) -> int:
    """The largest predictions file accepted: every record in float64, plus the header."""
    values = sum(n * c for n, c in shapes.values()) * num_seeds
    names = sum(len(r) + 200 for r in shapes)
    return values * 8 + names + _HEADER_SLACK + 8


def check_predictions_header(path: str | os.PathLike, shapes: Mapping[str, tuple[int, int]]) -> dict:
    """Check a predictions file from its header alone; return its metadata ``{type, seeds, model?}``.

    Reads the 8-byte header length and the JSON header (nothing else), and refuses, naming each
    field: a file larger than :func:`max_file_bytes` allows (before anything is read), a pickle or
    zip, a header that is not a JSON object, missing or unknown record ids, a dtype other than
    F16/BF16/F32/F64, a shape other than ``[len(seeds), num_outputs, num_classes]``, byte ranges
    that do not hold exactly that many values or overlap, bytes after the last tensor, and
    metadata ``type``/``seeds`` that are missing or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"predictions file not found: {path}")
    size = path.stat().st_size
    limit = max_file_bytes(shapes, MAX_SEEDS)
    if size > limit:
        raise IntegrityError(f"{path}: {size} bytes, more than the {limit} that {len(shapes)} records in float64 "
                             f"with {MAX_SEEDS} seeds need; refused before reading")
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head.startswith((b"\x80", b"PK\x03\x04")):
            raise IntegrityError(f"{path}: a pickle/torch.save file, not safetensors; pickles can run code when "
                                 "loaded and are refused. Write it with benchmark.predictions.write_predictions")
        if len(head) < 8:
            raise IntegrityError(f"{path}: not a safetensors file ({size} bytes, no header)")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise IntegrityError(f"{path}: not a safetensors file (header length {length} in a {size}-byte file)")
        try:
            header = json.loads(handle.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise IntegrityError(f"{path}: not a safetensors file (unreadable header: {err})") from None
    if not isinstance(header, dict):
        raise IntegrityError(f"{path}: not a safetensors file (the header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    problems = []
    if not isinstance(meta, dict):
        meta = {}
        problems.append("predictions (metadata): must be a map of strings")
    kind = meta.get("type")
    if kind not in PREDICTION_TYPES:
        problems.append(f"predictions.type: {kind!r}; valid types: {', '.join(PREDICTION_TYPES)} "
                        "(safetensors metadata 'type')")
    seeds = None
    try:
        seeds = json.loads(meta.get("seeds", "null"))
    except (TypeError, json.JSONDecodeError):
        pass
    if (not isinstance(seeds, list) or not 1 <= len(seeds) <= MAX_SEEDS
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
            or len(set(seeds)) != len(seeds)):
        problems.append(f"predictions.seeds: {meta.get('seeds')!r}; must be a JSON list of 1 to {MAX_SEEDS} distinct "
                        "non-negative integers (safetensors metadata 'seeds', the order of the first axis)")
        seeds = None
    missing = sorted(set(shapes) - set(header))
    unexpected = sorted(set(header) - set(shapes))
    if missing:
        problems.append(f"predictions.outputs: no tensor for {len(missing)} record(s) of the release, e.g. "
                        f"{missing[:_MAX_LISTED]} (the template lists every record id)")
    if unexpected:
        problems.append(f"predictions.outputs: {len(unexpected)} tensor(s) named after no record of the release, "
                        f"e.g. {unexpected[:_MAX_LISTED]}")
    ranges = []
    for record_id in sorted(set(header) & set(shapes)):
        info, where = header[record_id], _where(record_id)
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            problems.append(f"{where}: malformed header entry (needs dtype, shape, data_offsets)")
            continue
        if info["dtype"] not in DTYPE_BYTES:
            problems.append(f"{where}.dtype: {info['dtype']}; valid dtypes: F16, BF16, F32, F64 (float16, bfloat16, "
                            "float32, float64)")
            continue
        shape = info["shape"]
        want = [len(seeds) if seeds else None, *shapes[record_id]]
        if not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(s, int) for s in shape):
            problems.append(f"{where}.shape: {shape!r}; must be [num_seeds, {want[1]}, {want[2]}]")
            continue
        bad = [f"{where}.shape[{i}]: {got}, expected {exp} ({name})" for i, (got, exp, name) in
               enumerate(zip(shape, want, ("the number of seeds", "outputs of this record", "classes")))
               if exp is not None and got != exp]
        if bad:
            problems += bad
            continue
        offsets = info["data_offsets"]
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[info["dtype"]] or offsets[0] < 0):
            problems.append(f"{where}.data_offsets: {offsets!r} does not hold {math.prod(shape)} "
                            f"{info['dtype']} values")
            continue
        ranges.append((offsets[0], offsets[1], record_id))
    if not problems:
        end = 0
        for start, stop, record_id in sorted(ranges):
            if start < end:
                problems.append(f"{_where(record_id)}.data_offsets: overlaps the previous tensor")
            end = max(end, stop)
        if 8 + length + end != size:
            problems.append(f"predictions: {size - 8 - length - end} bytes after the last tensor (or missing)")
    _raise(problems, f"{path}: predictions file refused from its header, nothing was loaded")
    out = {"type": kind, "seeds": seeds}
    if isinstance(meta.get("model"), str):
        out["model"] = meta["model"]
    return out


def load_checked_predictions(path: str | os.PathLike, evaluator) -> dict:
    """:func:`check_predictions_header`, then the tensors (pickles and NaN/Inf refused), as
    :meth:`~benchmark.evaluate.Evaluator.eval_predictions` takes them."""
    from benchmark.checkpoints import read_safetensors

    meta = check_predictions_header(path, expected_shapes(evaluator))
    tensors = read_safetensors(path)  # refuses NaN/Inf, naming the tensors
    return {**meta, "outputs": tensors}


# -- Scoring ----------------------------------------------------------------------------------------------------------

def score_predictions(path: str | os.PathLike, entry: str, release: str | os.PathLike | None = None, *,
                      display_name: str | None = None, authors: Sequence[str] = ("anonymous",),
                      model: str | None = None, num_parameters: int = 0, paper_url: str | None = None,
                      code_url: str | None = None, num_bootstrap: int | None = None, evaluator=None) -> dict:
    """Check and score a predictions file; return its results document (``prediction_only: true``).

    ``entry`` names the results file (``submissions/results/<entry>.json``) and the folder that
    must hold the scored file to rank (``submissions/<entry>/predictions.safetensors``).
    """
    from benchmark.evaluate import Evaluator, results_document
    from benchmark.metrics.scores import DEFAULT_BOOTSTRAP
    from benchmark.submission_card import ENTRY_PATTERN, RESERVED_ENTRIES

    start = time.perf_counter()
    if not ENTRY_PATTERN.match(entry) or entry.lower() in RESERVED_ENTRIES:
        raise UserError(f"--name {entry!r} is not a valid entry name: 1-64 letters, digits, '.', '_' and '-', "
                        f"starting with a letter or digit, not {', '.join(sorted(RESERVED_ENTRIES))}")
    if num_parameters < 0:
        raise UserError(f"num_parameters must be >= 0 (0: not stated), got {num_parameters}")
    if evaluator is None:
        evaluator = Evaluator(release if release is not None else "v1",
                              num_bootstrap=DEFAULT_BOOTSTRAP if num_bootstrap is None else num_bootstrap)
    if evaluator.release_info is None:
        raise UserError("the evaluator has no release identity (name, version, manifest hash) to bind scores to")
    digest = sha256_file(path) if Path(path).is_file() else None
    predictions = load_checked_predictions(path, evaluator)
    label = model or predictions.get("model") or "custom"
    predictions["model"] = label
    scores = evaluator.eval_predictions(predictions)
    submission = {
        "name": display_name or entry, "authors": list(authors), "architecture": label,
        "num_parameters": int(num_parameters), "seeds": scores["seeds"], "tier": "self-reported",
        "paper_url": paper_url, "code_url": code_url, "predictions_sha256": digest,
    }
    return results_document(entry, submission, evaluator, scores, start, prediction_only=True)
