"""The predictions contract: what :meth:`Evaluator.eval_predictions` accepts, checked before any scoring.

Input (a mapping, or a ``.safetensors`` file of the same, see :func:`load_predictions`)::

    {"type": "logits" | "probs", "seeds": [0, 1, 2], "model": "optional name",
     "outputs": {record_id: tensor or nested list [num_seeds, n_outputs, num_classes], ...}}

``n_outputs`` is the record's node count (node tasks) or 1 (graph tasks). :func:`input_schema`
builds the release-specific JSON Schema (every record id required, unknown ids refused, each
shape fixed) from ``benchmark/schemas/predictions.schema.json``; tensors are validated through
their ``{dtype, shape}`` description (:func:`describe`), so a wrong shape is named by its field
path before any value is read. :func:`checked_probabilities` then refuses what a schema cannot
say (seed count, NaN/Inf, probabilities that are not a distribution) and returns float64 class
probabilities.

Why a module of its own: this is the one public input format for outside predictions
(``score-predictions``, :mod:`benchmark.predictions`); it is defined here once and the evaluator
only consumes its output.
"""
from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from benchmark.errors import UserError
from benchmark.evaluate.units import output_positions
from benchmark.records import GraphRecord
from benchmark.schemas import json_path, load_schema, raise_problems, schema_problems

_FLOAT_DTYPES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32",
                 torch.float64: "float64"}
PROBS_TOLERANCE = 1e-3  # |row sum - 1| allowed for type "probs"


def load_predictions(path: str | os.PathLike) -> dict:
    """Predictions from a ``.safetensors`` file: one tensor per record id ``[K, n_outputs, C]``;
    metadata ``type`` (logits|probs), ``seeds`` (JSON list) and optionally ``model``."""
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


def input_schema(records: Mapping[str, GraphRecord], dataset_of: Mapping[str, str], tasks: Mapping[str, str],
                 num_classes: Mapping[str, int], classes_exact: Mapping[str, bool]) -> dict:
    """JSON Schema of the predictions input for these records (tensors as ``{dtype, shape}``).

    Every record id is required (coverage), unknown ids are refused, and each record's ``shape``
    is ``[num_seeds, n_outputs, num_classes]`` (``num_classes`` a minimum where it is not exact).
    """
    schema = copy.deepcopy(load_schema("predictions"))
    outputs = schema["properties"]["outputs"]
    properties = {}
    for record_id in sorted(records):
        dataset = dataset_of[record_id]
        classes = ({"const": num_classes[dataset]} if classes_exact[dataset] else {"minimum": num_classes[dataset]})
        properties[record_id] = {"$ref": "#/$defs/tensor", "properties": {"shape": {"prefixItems": [
            {}, {"const": output_positions(records[record_id], tasks[dataset])}, classes]}}}
    outputs["properties"] = properties
    outputs["required"] = sorted(records)
    outputs["additionalProperties"] = False
    return schema


def describe(predictions: object) -> tuple[object, dict[str, Tensor]]:
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


def checked_probabilities(predictions: Mapping, schema: dict) -> tuple[dict[str, Tensor], list[int], str]:
    """``(probs, seeds, model name)`` from a predictions input that passes ``schema`` and the checks a
    schema cannot make; every problem names its field path, all of them in one :class:`UserError`."""
    described, tensors = describe(predictions)
    raise_problems(schema_problems(described, schema, "predictions"),
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
            if (value < 0).any() or not bool(((value.sum(-1) - 1.0).abs() <= PROBS_TOLERANCE).all()):
                problems.append(f"{where}: type is 'probs' but rows are negative or do not sum to 1")
                continue
            probs[record_id] = value / value.sum(-1, keepdim=True)
        else:
            probs[record_id] = torch.softmax(value, dim=-1)
    raise_problems(problems, "predictions refused")
    return probs, seeds, str(predictions.get("model", "unknown"))
