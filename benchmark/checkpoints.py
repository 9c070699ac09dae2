"""Checkpoints: safetensors weights + a JSON card; strict, hash-checked, NaN-free loading.

A checkpoint is a folder (or a pair of paths) holding ``model.safetensors`` and ``card.json``.
The card records the config, dataset, seed, metrics, library versions and the weights' SHA-256.
The architecture always comes from the registry and the declared config, never from the file.
"""
from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from benchmark.errors import IntegrityError, UserError
from benchmark.files import atomic_write_bytes, atomic_write_json, read_json, sha256_file
from benchmark.models import GraphModel, ModelConfig, build_model
from benchmark.versions import library_versions

WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "card.json"
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+ and torch.save's zip container
# safetensors' own limit on the JSON header; a model of the zoo needs a few KiB.
MAX_HEADER_BYTES = 100 << 20
_FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}


def state_dict_bytes(model: torch.nn.Module) -> bytes:
    """Serialise a state dict to safetensors bytes, deterministically (sorted names, contiguous)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in sorted(model.state_dict().items())}
    return save(tensors, metadata={"format": "pt"})


def read_safetensors(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load tensors from a ``.safetensors`` file after checking its hash and refusing pickles.

    Raises :class:`IntegrityError` naming the file for a hash mismatch, a pickle or zip file
    (whatever its extension), a corrupt header, or NaN/Inf values.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256.lower():
            raise IntegrityError(f"{path}: SHA-256 mismatch (expected {expected_sha256}, got {actual}); "
                                 "the file was changed or replaced")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(_PICKLE_MAGIC):
        raise IntegrityError(f"{path}: this is a pickle/torch.save file, not safetensors; pickled weights "
                             "can run code when loaded and are refused. Convert with safetensors.torch.save_file")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise IntegrityError(f"{path}: not a valid safetensors file ({err})") from err
    bad = sorted(k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if bad:
        raise IntegrityError(f"{path}: tensors with NaN or Inf values are refused: {', '.join(bad)}")
    return tensors


def _fit_problems(missing: list[str], unexpected: list[str], shapes: list[str]) -> list[str]:
    """How a set of tensors fails to fit a model, as phrases (at most 8 names each), for one error line."""
    problems = []
    if missing:
        problems.append(f"missing tensors {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    if shapes:
        problems.append(f"shape mismatches {shapes[:8]}")
    return problems


def check_safetensors_header(path: str | os.PathLike, expected: dict[str, tuple[int, ...]], source: str) -> None:
    """Check a safetensors file's header against the tensors a model expects, before reading any data.

    The header (8-byte length + JSON) names every tensor with its dtype, shape and byte range, so
    a file with an extra 2 GiB tensor, a wrong shape or a non-float dtype is refused having read
    only the header; the file must also end exactly where its last tensor does.

    Args:
        expected: tensor name -> shape (``{k: tuple(v.shape) for k, v in model.state_dict().items()}``).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head.startswith(_PICKLE_MAGIC):
            raise IntegrityError(f"{source}: {path}: this is a pickle/torch.save file, not safetensors; pickled "
                                 "weights can run code when loaded and are refused. Convert with "
                                 "safetensors.torch.save_file")
        if len(head) < 8:
            raise IntegrityError(f"{source}: not a valid safetensors file ({size} bytes, no header)")
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise IntegrityError(f"{source}: not a valid safetensors file (header length {length} in a "
                                 f"{size}-byte file; at most {MAX_HEADER_BYTES})")
        try:
            header = json.loads(handle.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise IntegrityError(f"{source}: not a valid safetensors file (unreadable header: {err})") from None
    if not isinstance(header, dict):
        raise IntegrityError(f"{source}: not a valid safetensors file (the header is not a JSON object)")
    header.pop("__metadata__", None)
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    shapes, malformed, end = [], [], 0
    for name in sorted(set(header) & set(expected)):
        info = header[name]
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            malformed.append(f"{name}: malformed header entry")
        elif info["dtype"] not in _FLOAT_DTYPES:
            malformed.append(f"{name}: dtype {info['dtype']}, expected one of {sorted(_FLOAT_DTYPES)}")
        elif tuple(info["shape"]) != tuple(expected[name]):
            shapes.append(f"{name}: file {tuple(info['shape'])} vs model {tuple(expected[name])}")
        else:
            start, stop = info["data_offsets"]
            if stop - start != math.prod(expected[name]) * _FLOAT_DTYPES[info["dtype"]]:
                malformed.append(f"{name}: byte range {start}-{stop} does not hold {math.prod(expected[name])} "
                                 f"{info['dtype']} values")
            end = max(end, stop)
    problems = _fit_problems(missing, unexpected, shapes) + malformed[:8]
    if not problems and 8 + length + end != size:
        problems.append(f"{size - 8 - length - end} bytes after the last tensor")
    if problems:
        raise IntegrityError(f"{source}: weights do not fit the declared config ({'; '.join(problems)}); "
                             "refused from the header, nothing was loaded")


def load_state_strict(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` into ``model``; any missing, unexpected or mis-shaped tensor is an error."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = sorted(f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
                    for k, v in expected.items() if k in tensors and tuple(tensors[k].shape) != tuple(v.shape))
    problems = _fit_problems(missing, unexpected, shapes)
    if problems:
        raise IntegrityError(f"{source}: weights do not fit the declared config ({'; '.join(problems)})")
    cast = {k: tensors[k].to(expected[k].dtype) for k in expected}
    # float64 weights of 1e300 are finite in the file and Inf in the float32 model: check after the cast.
    bad = sorted(k for k, v in cast.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if bad:
        raise IntegrityError(f"{source}: tensors not finite in the model's dtype {expected[bad[0]].dtype} "
                             f"(NaN, Inf, or too large to cast): {', '.join(bad[:8])}")
    model.load_state_dict(cast, strict=True)


def save_checkpoint(model: GraphModel, directory: str | os.PathLike, card: dict) -> Path:
    """Write ``model.safetensors`` and ``card.json`` into ``directory`` atomically; returns it.

    ``card`` holds the caller's fields (dataset, seed, metrics, ...); config, weights hash and
    library versions are added here so they can never disagree with the file.
    """
    directory = Path(directory)
    data = state_dict_bytes(model)
    atomic_write_bytes(directory / WEIGHTS_NAME, data)
    full = {**card, "config": model.config.to_dict(), "weights": WEIGHTS_NAME,
            "weights_sha256": sha256_file(directory / WEIGHTS_NAME), "library_versions": library_versions()}
    atomic_write_json(directory / CARD_NAME, full)
    return directory


def load_checkpoint(directory: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[GraphModel, dict]:
    """Rebuild a model from ``card.json`` and load its verified weights; returns ``(model, card)``."""
    directory = Path(directory)
    card_path = directory / CARD_NAME
    if not card_path.is_file():
        raise UserError(f"{directory} is not a checkpoint: {CARD_NAME} not found")
    card = read_json(card_path)
    for key in ("config", "weights_sha256"):
        if key not in card:
            raise UserError(f"{card_path}: missing field {key!r}")
    config = ModelConfig.from_dict(card["config"])
    model = build_model(config)
    weights = directory / card.get("weights", WEIGHTS_NAME)
    if weights.resolve().parent != directory.resolve():
        raise IntegrityError(f"{card_path}: weights path {card.get('weights')!r} leaves the checkpoint folder")
    load_state_strict(model, read_safetensors(weights, card["weights_sha256"]), str(weights))
    model.eval()
    return model.to(device), card
