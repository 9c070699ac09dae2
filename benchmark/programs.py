"""Exported-program submissions: any architecture, as a ``torch.export`` program per dataset and seed.

Contract (README, "Exported-program submissions"):

- The card (``submission.json``, schema ``benchmark/schemas/program_submission.schema.json``) says
  ``"format": "torch.export"``, names the architecture freely (``architecture.name``, a label,
  not a registry name) and declares its stages in order (``architecture.stages``); per dataset,
  ``programs`` maps each seed to ``{path: <dir>/seed-<n>.pt2, sha256}`` inside the entry folder.
- Each program is ``forward(x, edge_index, edge_weight=None, batch=None)`` exported with
  :func:`export_program` (``torch.export.export`` on ``(x [N, F] float32, edge_index [2, E] int64,
  edge_weight [E] float32)`` plus ``batch [N] int64`` for graph tasks, with N and E dynamic, then
  ``torch.export.save`` with the example inputs dropped). It returns a tuple
  ``(logits, stage_1, ..., stage_k)``: logits ``[N, C]`` (node task) or ``[num_graphs, C]`` (graph
  task), then the activations of each declared stage in the card's order.

Loading executes no submitted Python and unpickles nothing (:func:`check_program_archive`, then
:func:`load_program`). ``torch.export.load`` on an untrusted archive is not safe by itself in
torch 2.13 (measured, see ``tests/test_programs.py``): it unpickles
``data/sample_inputs/model.pt`` (falling back to ``weights_only=False``), and any weight or
constant whose config says ``use_pickle``; it evaluates every ``expr_str`` of ``models/model.json``
with ``sympy.sympify`` (Python ``eval``); ``ExportedProgram.module()`` ``exec``s the
``guards_code`` strings; tree specs can name a module to import. So before ``torch.export.load``
sees the file, the archive is checked:

1. size (at most :data:`MAX_PROGRAM_BYTES`), a zip whose members are all stored (no compression:
   sizes are what they say), under one root folder, named only as documented
   (:data:`_FIXED_MEMBERS`, ``data/weights/weight_<n>``, ``data/constants/tensor_<n>``); a ``.pkl``
   member, a pickle or ``torch.save`` stream in an undocumented member, or a non-empty
   ``data/sample_inputs/model.pt`` is refused as a pickle;
2. the weights and constants configs: no ``use_pickle``, CPU strided tensors of an allowed dtype,
   whose sizes, strides and offsets fit the bytes of their member, in total at most
   :data:`MAX_PROGRAM_VALUES` values (checked before anything is allocated);
3. ``models/model.json``: every operator a node calls is in :data:`ALLOWED_OPS` (the error names
   the first one that is not), every ``expr_str`` is a sympy expression built only from the
   names in :data:`_SYMPY_NAMES`, every guard matches :data:`_GUARD` (size comparisons joined by ``and``/``or``), every tree spec uses only
   tuple, list and dict nodes.

After loading, the graph's operators are checked again, and the inputs and outputs against the
card (3 inputs for node tasks, 4 for graph tasks; 1 + number of stages outputs). Every error
names the member or field and the valid options.
"""
from __future__ import annotations

import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import torch
from torch import Tensor, nn

from benchmark.errors import IntegrityError, UserError

PROGRAM_FORMAT = "torch.export"
MAX_PROGRAM_BYTES = 512 << 20  # a GNN of the zoo exports to well under 10 MiB
MAX_PROGRAM_VALUES = 64 << 20  # weights + constants, in values
MAX_MODEL_JSON_BYTES = 64 << 20
MAX_MEMBERS = 4096
PROGRAM_NAME = re.compile(r"^seed-(0|[1-9][0-9]*)\.pt2$")

_FIXED_MEMBERS = frozenset({
    "archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id",
    "models/model.json", "data/weights/model_weights_config.json", "data/constants/model_constants_config.json",
    "data/sample_inputs/model.pt",
})
_PAYLOAD = {"data/weights/": re.compile(r"^weight_[0-9]{1,6}$"), "data/constants/": re.compile(r"^tensor_[0-9]{1,6}$")}
_PICKLE_START = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")

# torch.export's ScalarType enum (torch/_export/serde/schema.py) -> bytes per value, for the dtypes a
# GNN's weights and constants use.
_DTYPES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 2, 7: 4, 8: 8, 12: 1, 13: 2}  # u8 i8 i16 i32 i64 f16 f32 f64 bool bf16
_STRIDED = 7  # schema.Layout.Strided

# Operators a program may call: ATen operators a GNN needs (dense and scatter message passing,
# activations, normalisation, pooling) and the shape arithmetic torch.export emits. Random
# operators (dropout in training mode, rand*), I/O, in-place writes to inputs beyond scatter, and
# anything outside the aten namespace are not here.
ALLOWED_OPS = frozenset({
    # shape arithmetic and runtime asserts emitted by torch.export
    "_operator.add", "_operator.sub", "_operator.mul", "_operator.floordiv", "_operator.mod", "_operator.neg",
    "_operator.eq", "_operator.ne", "_operator.ge", "_operator.gt", "_operator.le", "_operator.lt",
    "_operator.getitem", "_operator.and_", "_operator.or_", "_operator.not_", "_operator.truediv",
    "torch.sym_max", "torch.sym_min", "torch.sym_not", "torch.sym_float", "torch.sym_int", "torch.sym_ite",
    "torch.ops.aten.sym_size.int", "torch.ops.aten.sym_numel.default", "torch.ops.aten.sym_stride.int",
    "torch.ops.aten._assert_scalar.default", "torch.ops.aten.sym_constrain_range_for_size.default",
    "torch.ops.aten._assert_tensor_metadata.default", "torch.ops.aten.item.default",
    "torch.ops.aten._local_scalar_dense.default",
    *(f"torch.ops.aten.{op}" for op in (
        # creation
        "arange.default", "arange.start", "arange.start_step", "zeros.default", "ones.default", "full.default",
        "empty.memory_format", "new_zeros.default", "new_ones.default", "new_full.default", "new_empty.default",
        "zeros_like.default", "ones_like.default", "full_like.default", "empty_like.default", "scalar_tensor.default",
        "lift_fresh_copy.default", "clone.default", "alias.default", "detach.default", "_to_copy.default",
        "to.dtype", "to.dtype_layout", "to.device", "type_as.default", "contiguous.default",
        # views and layout
        "view.default", "reshape.default", "_unsafe_view.default", "flatten.using_ints", "unflatten.int",
        "unsqueeze.default", "squeeze.default", "squeeze.dim", "squeeze.dims", "expand.default", "expand_as.default",
        "permute.default", "t.default", "transpose.int", "select.int", "slice.Tensor", "narrow.default",
        "split.Tensor", "split_with_sizes.default", "chunk.default", "unbind.int", "cat.default", "stack.default",
        "repeat.default", "repeat_interleave.self_int", "repeat_interleave.Tensor", "flip.default", "roll.default",
        # indexing and message passing
        "index.Tensor", "index_select.default", "gather.default", "scatter.src", "scatter.value",
        "scatter_add.default", "scatter_add_.default", "scatter_reduce.two", "scatter_reduce_.two",
        "index_add.default", "index_add_.default", "index_put.default", "index_put_.default",
        "masked_fill.Scalar", "masked_fill.Tensor", "masked_fill_.Scalar", "masked_fill_.Tensor",
        "masked_select.default", "where.self", "where.ScalarOther", "where.ScalarSelf", "nonzero.default",
        "unique.default", "_unique2.default", "sort.default", "argsort.default", "topk.default", "bincount.default",
        "cumsum.default", "sparse_coo_tensor.default",
        # arithmetic
        "add.Tensor", "add.Scalar", "add_.Tensor", "add_.Scalar", "sub.Tensor", "sub.Scalar", "rsub.Scalar",
        "rsub.Tensor", "mul.Tensor", "mul.Scalar", "mul_.Tensor", "mul_.Scalar", "div.Tensor", "div.Scalar",
        "div.Tensor_mode", "div_.Tensor", "div_.Scalar", "neg.default", "reciprocal.default", "pow.Tensor_Scalar",
        "pow.Tensor_Tensor", "pow.Scalar", "pow_.Scalar", "pow_.Tensor_Scalar", "sqrt.default", "rsqrt.default",
        "exp.default", "log.default", "log1p.default", "expm1.default", "abs.default", "sign.default",
        "clamp.default", "clamp.Tensor", "clamp_min.default", "clamp_max.default", "clamp_.default",
        "maximum.default", "minimum.default", "fmod.Scalar", "remainder.Scalar", "floor.default", "ceil.default",
        "round.default", "sin.default", "cos.default", "lerp.Scalar", "addcmul.default",
        # comparison and logic
        "eq.Scalar", "eq.Tensor", "ne.Scalar", "ne.Tensor", "lt.Scalar", "lt.Tensor", "le.Scalar", "le.Tensor",
        "gt.Scalar", "gt.Tensor", "ge.Scalar", "ge.Tensor", "logical_and.default", "logical_or.default",
        "logical_not.default", "bitwise_and.Tensor", "bitwise_or.Tensor", "bitwise_not.default", "isnan.default",
        "isinf.default", "any.default", "any.dim", "all.default", "all.dim",
        # reductions
        "sum.default", "sum.dim_IntList", "mean.default", "mean.dim", "amax.default", "amin.default",
        "max.default", "max.dim", "min.default", "min.dim", "prod.default", "var.correction", "var_mean.correction",
        "std.correction", "norm.ScalarOpt_dim", "linalg_vector_norm.default", "argmax.default", "argmin.default",
        "logsumexp.default",
        # linear algebra
        "linear.default", "matmul.default", "mm.default", "addmm.default", "bmm.default", "baddbmm.default",
        "einsum.default", "mv.default", "dot.default", "_sparse_mm.default", "embedding.default",
        # activations and normalisation
        "relu.default", "relu_.default", "gelu.default", "elu.default", "elu_.default", "leaky_relu.default",
        "leaky_relu_.default", "prelu.default", "selu.default", "celu.default", "silu.default", "mish.default",
        "softplus.default", "tanh.default", "sigmoid.default", "hardtanh.default", "softmax.int", "_softmax.default",
        "log_softmax.int", "_log_softmax.default", "layer_norm.default", "native_layer_norm.default",
        "group_norm.default", "batch_norm.default", "_native_batch_norm_legit_no_training.default",
        "instance_norm.default", "dropout.default", "native_dropout.default",
    )),
})
# Names a sympy expression in model.json may use (torch's symbolic shape functions and sympy's
# constructors); no attribute access, no strings but symbol names.
_SYMPY_NAMES = frozenset({
    "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Max", "Min", "Abs", "Mod", "Eq", "Ne", "Lt",
    "Le", "Gt", "Ge", "GreaterThan", "LessThan", "StrictGreaterThan", "StrictLessThan", "Equality",
    "Unequality", "And", "Or", "Not", "true", "false", "True", "False", "oo", "zoo", "nan", "floor", "ceiling",
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "IntTrueDiv", "FloatTrueDiv", "ToFloat", "TruncToInt", "TruncToFloat", "Identity",
    "OpaqueUnaryFn_sqrt", "IsNonOverlappingAndDenseIndicator", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or",
    "RoundToInt", "RoundDecimal", "PowByNatural", "FloatPow", "Piecewise",
    "positive", "integer", "real", "nonnegative", "negative", "finite",
})
_SYMBOL_NAME = re.compile(r"^'[a-z][a-z]?[0-9]{1,9}'$")
_EXPR_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|('[^']*')|([0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)|"
                         r"(\*\*|//|==|!=|<=|>=|[-+*/%(),=<>]))")
_GUARD_OPERAND = r"(?:L\['[A-Za-z_][A-Za-z0-9_]*'\]\.size\(\)\[[0-9]{1,3}\]|-?[0-9]{1,19})"
_GUARD_COMPARISON = rf"{_GUARD_OPERAND} (?:==|!=|<=|>=|<|>) {_GUARD_OPERAND}"
# Size comparisons, possibly joined by ``and``/``or`` (broadcasting a batch vector against node rows
# gives ``L['batch'].size()[0] == 1 or L['x'].size()[0] == L['batch'].size()[0]``); no calls, no names.
_GUARD = re.compile(rf"^{_GUARD_COMPARISON}(?: (?:and|or) {_GUARD_COMPARISON}){{0,15}}$")
_TREESPEC_TYPES = frozenset({None, "builtins.tuple", "builtins.list", "builtins.dict"})
_MAX_LISTED = 8


def _refuse(source: str, message: str) -> IntegrityError:
    return IntegrityError(f"{source}: {message}")


# -- 1. The archive's members -----------------------------------------------------------------------------------------

def _looks_pickled(data: bytes) -> bool:
    return data.startswith(_PICKLE_START) or b"data.pkl" in data[:4096]


@dataclass
class _Archive:
    root: str
    members: dict[str, zipfile.ZipInfo]  # name relative to the root -> info


def _members(path: Path, source: str) -> tuple[zipfile.ZipFile, _Archive]:
    size = path.stat().st_size
    if size > MAX_PROGRAM_BYTES:
        raise _refuse(source, f"{size} bytes; a program may have at most {MAX_PROGRAM_BYTES} (refused unread)")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(_PICKLE_START[:4]):
        raise _refuse(source, "a pickle stream, not a torch.export archive; pickles can run code and are refused")
    if not zipfile.is_zipfile(path):
        raise _refuse(source, "not a torch.export archive (not a zip file); write it with "
                              "benchmark.programs.export_program")
    archive = zipfile.ZipFile(path)
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _refuse(source, f"{len(infos)} archive members; at most {MAX_MEMBERS}")
    roots = {i.filename.split("/", 1)[0] for i in infos}
    if len(roots) != 1 or any("/" not in i.filename for i in infos):
        raise _refuse(source, f"members under {sorted(roots)[:4]}; a torch.export archive keeps every member "
                              "under one root folder")
    root = roots.pop()
    members: dict[str, zipfile.ZipInfo] = {}
    problems, total = [], 0
    for info in infos:
        name = info.filename[len(root) + 1:]
        where = f"member {name!r}"
        if name in members:
            problems.append(f"{where}: appears twice")
            continue
        members[name] = info
        total += info.file_size
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            problems.append(f"{where}: compressed; torch.export.save stores members uncompressed")
            continue
        directory, _, base = name.rpartition("/")
        documented = name in _FIXED_MEMBERS or bool(_PAYLOAD.get(directory + "/", re.compile("(?!)")).match(base))
        if not documented:
            pickled = name.endswith(".pkl") or _looks_pickled(archive.read(info.filename)[:4096]
                                                               if info.file_size <= MAX_PROGRAM_BYTES else b"")
            if pickled:
                problems.append(f"{where}: a pickle stream; pickles can run code when loaded and are refused")
            else:
                problems.append(f"{where}: not a member of a torch.export archive; documented members: "
                                f"{', '.join(sorted(_FIXED_MEMBERS))}, data/weights/weight_<n>, "
                                "data/constants/tensor_<n>")
    if total > size:
        problems.append(f"members claim {total} bytes in a {size}-byte file")
    missing = sorted(_FIXED_MEMBERS - set(members) - {".data/serialization_id", "archive_version", "byteorder"})
    if missing:
        problems.append(f"missing member(s) {missing}")
    sample = members.get("data/sample_inputs/model.pt")
    if sample is not None and sample.file_size:
        problems.append("member 'data/sample_inputs/model.pt': holds example inputs, a torch.save (pickle) stream "
                        "that torch.export.load would unpickle; export with benchmark.programs.export_program, "
                        "which drops them (ep.example_inputs = None)")
    if problems:
        archive.close()
        _raise(problems, f"{source}: archive refused before loading")
    return archive, _Archive(root, members)


def _raise(problems: list[str], what: str) -> None:
    shown = problems[:_MAX_LISTED]
    more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    raise IntegrityError(f"{what} ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n  "
                         + "\n  ".join(shown) + more)


def _read_json_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, limit: int = 16 << 20):
    if info.file_size > limit:
        raise _refuse(source, f"member {info.filename!r}: {info.file_size} bytes, at most {limit}")
    try:
        return json.loads(archive.read(info.filename).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise _refuse(source, f"member {info.filename!r}: not JSON ({err})") from None


# -- 2. Weights and constants -------------------------------------------------------------------------------------------

def _as_int(value, where: str, problems: list[str]) -> int | None:
    if isinstance(value, dict) and set(value) == {"as_int"} and isinstance(value["as_int"], int) \
            and not isinstance(value["as_int"], bool) and value["as_int"] >= 0:
        return value["as_int"]
    problems.append(f"{where}: {value!r}; must be a non-negative integer ({{'as_int': n}})")
    return None


def _payload_problems(config: object, directory: str, members: dict[str, zipfile.ZipInfo]) -> tuple[list[str], int]:
    """Problems of a weights/constants config and the number of values it declares."""
    problems, values = [], 0
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        return [f"{directory}: the payload config must be {{'config': {{name: entry}}}}"], 0
    for name, entry in sorted(entries.items()):
        where = f"{directory} {name!r}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: malformed entry")
            continue
        if entry.get("use_pickle") is not False:
            problems.append(f"{where}: use_pickle is {entry.get('use_pickle')!r}; pickled tensors can run code and "
                            "are refused (use_pickle must be false)")
            continue
        path_name = entry.get("path_name")
        pattern = _PAYLOAD[directory]
        if not isinstance(path_name, str) or not pattern.match(path_name) or directory + path_name not in members:
            problems.append(f"{where}: path_name {path_name!r} is not a {directory}{pattern.pattern} member")
            continue
        meta = entry.get("tensor_meta")
        if not isinstance(meta, dict):
            problems.append(f"{where}: no tensor_meta")
            continue
        if meta.get("dtype") not in _DTYPES:
            problems.append(f"{where}.tensor_meta.dtype: {meta.get('dtype')!r}; allowed ScalarType codes "
                            f"{sorted(_DTYPES)}")
            continue
        device = meta.get("device")
        if not isinstance(device, dict) or device.get("type") != "cpu":
            problems.append(f"{where}.tensor_meta.device: {device!r}; programs are stored on the CPU")
            continue
        if meta.get("layout") != _STRIDED:
            problems.append(f"{where}.tensor_meta.layout: {meta.get('layout')!r}; only strided tensors ({_STRIDED})")
            continue
        sizes, strides = meta.get("sizes"), meta.get("strides")
        if not isinstance(sizes, list) or not isinstance(strides, list) or len(sizes) != len(strides) \
                or len(sizes) > 8:
            problems.append(f"{where}.tensor_meta: sizes and strides must be lists of equal length (at most 8)")
            continue
        found: list[str] = []
        dims = [_as_int(s, f"{where}.tensor_meta.sizes[{i}]", found) for i, s in enumerate(sizes)]
        steps = [_as_int(s, f"{where}.tensor_meta.strides[{i}]", found) for i, s in enumerate(strides)]
        offset = _as_int(meta.get("storage_offset"), f"{where}.tensor_meta.storage_offset", found)
        if found:
            problems += found
            continue
        numel = math.prod(dims)
        extent = 0 if numel == 0 else offset + sum((d - 1) * s for d, s in zip(dims, steps)) + 1
        nbytes = members[directory + path_name].file_size
        itemsize = _DTYPES[meta["dtype"]]
        if extent * itemsize > nbytes or (numel and nbytes == 0) or nbytes % itemsize:
            problems.append(f"{where}: sizes {dims} and strides {steps} need {extent * itemsize} bytes, member "
                            f"{path_name} holds {nbytes}")
            continue
        values += max(numel, nbytes // itemsize)
    return problems, values


# -- 3. The graph (models/model.json) ------------------------------------------------------------------------------------

def _expr_problem(text: object) -> str | None:
    """Why ``text`` is not a safe sympy expression for ``sympify`` (None when it is)."""
    if not isinstance(text, str) or len(text) > 4096:
        return "not a string of at most 4096 characters"
    pos = 0
    while pos < len(text):
        match = _EXPR_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            rest = text[pos:].lstrip()
            return f"unexpected {rest[:20]!r}" if rest else None
        name, string = match.group(1), match.group(2)
        if name is not None and name not in _SYMPY_NAMES:
            return f"name {name!r} is not a sympy function or symbol constructor"
        if string is not None and not _SYMBOL_NAME.match(string):
            return f"string {string!r} is not a symbol name"
        pos = match.end()
    return None


def _treespec_problem(text: object) -> str | None:
    try:
        spec = json.loads(text) if isinstance(text, str) else None
    except (json.JSONDecodeError, RecursionError):
        return "not JSON"
    if not isinstance(spec, list) or len(spec) != 2:
        return "not a [version, spec] pair"
    stack = [spec[1]]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or node.get("type") not in _TREESPEC_TYPES:
            kind = node.get("type") if isinstance(node, dict) else node
            return f"node type {kind!r}; allowed: tuple, list, dict, leaf"
        context = node.get("context")
        if context is not None and (not isinstance(context, str) or "__enum__" in context
                                    or "default_factory" in context):
            return f"context {str(context)[:40]!r}"
        children = node.get("children_spec")
        if not isinstance(children, list):
            return "children_spec must be a list"
        stack += children
    return None


def graph_problems(model: object, allowed_ops: frozenset[str] = ALLOWED_OPS) -> list[str]:
    """Problems of a parsed ``models/model.json``: operators outside ``allowed_ops`` (named),
    unsafe ``expr_str``, ``guards_code`` and tree specs, a non-aten opset."""
    problems: list[str] = []
    if not isinstance(model, dict) or not isinstance(model.get("graph_module"), dict):
        return ["models/model.json: no graph_module"]
    opsets = model.get("opset_version")
    if not isinstance(opsets, dict) or set(opsets) - {"aten"}:
        problems.append(f"models/model.json opset_version: {opsets!r}; only the aten opset is allowed")
    for i, guard in enumerate(model.get("guards_code") or []):
        if not isinstance(guard, str) or not _GUARD.match(guard):
            problems.append(f"models/model.json guards_code[{i}]: {str(guard)[:80]!r} is not a size comparison "
                            "L['<input>'].size()[<i>] <op> <int or size> (or several joined by and/or); guards are exec'd by torch, refused")
    seen_ops: set[str] = set()
    stack: list[tuple[object, str]] = [(model, "models/model.json")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            if {"target", "inputs", "outputs"} <= set(node) and isinstance(node["target"], str):
                target = node["target"]
                if target not in allowed_ops and target not in seen_ops:
                    seen_ops.add(target)
                    shown = target.removeprefix("torch.ops.")
                    problems.append(f"operator {shown} (node {node.get('name')!r}) is not in the allow-list "
                                    "benchmark.programs.ALLOWED_OPS")
            for key, value in node.items():
                if key == "expr_str":
                    why = _expr_problem(value)
                    if why:
                        problems.append(f"{where}.expr_str {str(value)[:80]!r}: {why}; expressions are evaluated "
                                        "by sympy.sympify (Python eval), refused")
                elif key in ("in_spec", "out_spec") and value is not None:
                    why = _treespec_problem(value)
                    if why:
                        problems.append(f"{where}.{key}: tree spec {why}")
                elif isinstance(value, (dict, list)):
                    stack.append((value, f"{where}.{key}"))
        elif isinstance(node, list):
            stack += [(v, f"{where}[{i}]") for i, v in enumerate(node)]
    return problems


def check_program_archive(path: str | os.PathLike, source: str | None = None,
                          allowed_ops: frozenset[str] = ALLOWED_OPS) -> None:
    """Every check before loading (the module docstring's 1-3); raises :class:`IntegrityError`."""
    path = Path(path)
    source = source or str(path)
    if not path.is_file():
        raise UserError(f"{source}: program file not found: {path}")
    archive, parsed = _members(path, source)
    with archive:
        members, root = parsed.members, parsed.root
        problems, values = [], 0
        for config_name, directory in (("data/weights/model_weights_config.json", "data/weights/"),
                                       ("data/constants/model_constants_config.json", "data/constants/")):
            config = _read_json_member(archive, members[config_name], source)
            found, count = _payload_problems(config, directory, members)
            problems += found
            values += count
        if values > MAX_PROGRAM_VALUES:
            problems.append(f"weights and constants declare {values} values; at most {MAX_PROGRAM_VALUES}")
        if archive.read(f"{root}/archive_format") != b"pt2":
            problems.append("member 'archive_format': not pt2")
        if "byteorder" in members and archive.read(f"{root}/byteorder") != b"little":
            problems.append("member 'byteorder': not little")
        if problems:
            _raise(problems, f"{source}: archive refused before loading")
        model = _read_json_member(archive, members["models/model.json"], source, MAX_MODEL_JSON_BYTES)
    problems = graph_problems(model, allowed_ops)
    if problems:
        _raise(problems, f"{source}: program refused before loading")


# -- Loading and running ------------------------------------------------------------------------------------------------

def _graph_ops(gm: torch.fx.GraphModule) -> set[str]:
    """Every call_function target of ``gm`` and its submodules, in the serialised spelling."""
    out = set()
    for module in gm.modules():
        graph = getattr(module, "graph", None)
        if not isinstance(graph, torch.fx.Graph):
            continue
        for node in graph.nodes:
            if node.op != "call_function":
                continue
            target = node.target
            if isinstance(target, torch._ops.OpOverload):
                out.add(f"torch.ops.{target.namespace}.{target._opname}.{target._overloadname}")
            elif getattr(target, "__module__", None) in ("_operator", "operator"):
                out.add(f"_operator.{target.__name__}")
            elif getattr(target, "__module__", "").startswith("torch"):
                out.add(f"torch.{target.__name__}")
            else:
                out.add(repr(target))
    return out


class ProgramModel(nn.Module):
    """A loaded, checked program as a module: ``forward(x, edge_index, edge_weight=None, batch=None)``
    returns the logits; :meth:`stages` returns ``(logits, *stage activations)``. ``train()`` only sets a flag:
    a program is frozen as exported."""

    def __init__(self, program, task: str, stages: list[str], source: str):
        super().__init__()
        self.program = program.module()
        self.task, self.stage_names, self.source = task, list(stages), source

    def train(self, mode: bool = True):  # an exported module refuses train()/eval(); it has no modes
        self.training = mode
        return self

    def stages(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None,
               batch: Tensor | None = None) -> tuple[Tensor, ...]:
        if edge_weight is None:
            edge_weight = torch.ones(edge_index.size(1), dtype=x.dtype, device=x.device)
        args = (x, edge_index, edge_weight)
        if self.task == "graph":
            args += (batch if batch is not None else torch.zeros(x.size(0), dtype=torch.long, device=x.device),)
        out = self.program(*args)
        out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        if len(out) != 1 + len(self.stage_names):
            raise _refuse(self.source, f"returned {len(out)} outputs; the card declares logits and "
                                       f"{len(self.stage_names)} stage(s) {self.stage_names}")
        return out

    def forward(self, x, edge_index, edge_weight=None, batch=None) -> Tensor:
        return self.stages(x, edge_index, edge_weight, batch)[0]


def load_program(path: str | os.PathLike, task: str, stages: list[str], source: str | None = None,
                 allowed_ops: frozenset[str] = ALLOWED_OPS) -> ProgramModel:
    """Check the archive (:func:`check_program_archive`), ``torch.export.load`` it, check its graph's
    operators again and its inputs/outputs against ``task`` and ``stages``; return a :class:`ProgramModel`."""
    source = source or str(path)
    check_program_archive(path, source, allowed_ops)
    try:
        program = torch.export.load(str(path))
    except Exception as err:  # noqa: BLE001 - any failure of the deserializer is a refusal of the file
        raise _refuse(source, f"torch.export.load failed ({type(err).__name__}: {str(err)[:200]})") from None
    if program.example_inputs is not None:
        raise _refuse(source, "carries example inputs (a pickle); export with benchmark.programs.export_program")
    outside = sorted(_graph_ops(program.graph_module) - allowed_ops)
    if outside:
        raise _refuse(source, f"operator {outside[0].removeprefix('torch.ops.')} is not in the allow-list "
                              "benchmark.programs.ALLOWED_OPS")
    inputs = [s for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    want = 4 if task == "graph" else 3
    if len(inputs) != want:
        names = ", ".join(s.arg.name for s in inputs)
        raise _refuse(source, f"takes {len(inputs)} inputs ({names}); a {task}-task program takes "
                              f"{'x, edge_index, edge_weight, batch' if task == 'graph' else 'x, edge_index, edge_weight'}")
    outputs = program.graph_signature.output_specs
    user_outputs = [s for s in outputs if s.kind.name == "USER_OUTPUT"]
    if len(user_outputs) != 1 + len(stages):
        raise _refuse(source, f"returns {len(user_outputs)} outputs; the card declares logits and {len(stages)} "
                              f"stage(s) {stages}, so {1 + len(stages)}")
    return ProgramModel(program, task, stages, source)


def export_program(model: nn.Module, task: str, num_features: int, path: str | os.PathLike,
                   num_nodes: int = 16, num_edges: int = 48) -> Path:
    """Export ``model`` in the submission format and save it to ``path`` (the documented writer).

    Example inputs are random (only their shapes and dtypes matter: N and E are dynamic), and
    are dropped before saving so the archive holds no pickle. Stack traces (source paths on the
    exporting machine) are dropped too, so the same model gives the same bytes from any folder.

    A graph-task model must pool to ``num_graphs`` rows without a Python ``int`` of a tensor: PyG's
    pooling calls ``int(batch.max()) + 1``, which ``torch.export`` refuses as a data-dependent guard.
    Pass the size in: ``n = batch.max().item() + 1; torch._check(n >= 1); torch._check(n <= batch.size(0))``
    and ``global_mean_pool(h, batch, n)`` (or ``AttentionalAggregation(...)(h, batch, dim_size=n)``).
    """
    from torch.export import Dim

    model = model.eval()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(num_nodes, num_features, generator=generator)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=generator)
    edge_weight = torch.ones(num_edges)
    nodes, edges = Dim("num_nodes", min=2), Dim("num_edges", min=2)
    args = (x, edge_index, edge_weight)
    shapes: tuple = ({0: nodes}, {1: edges}, {0: edges})  # positional: the forward's argument names are free
    if task == "graph":
        args += (torch.zeros(num_nodes, dtype=torch.long),)
        shapes += ({0: nodes},)
    elif task != "node":
        raise UserError(f"task {task!r}; valid tasks: graph, node")
    program = torch.export.export(model, args, dynamic_shapes=shapes)
    program.example_inputs = None
    for module in program.graph_module.modules():  # the exporting machine's source paths: not part of the
        graph = getattr(module, "graph", None)     # program, and they make equal models differ in bytes
        for node in graph.nodes if isinstance(graph, torch.fx.Graph) else ():
            node.meta.pop("stack_trace", None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    return path


def program_name(dataset: str, seed: int) -> str:
    """Where a seed's program lives inside an entry folder: ``<dataset>/seed-<n>.pt2``."""
    return f"{dataset}/seed-{int(seed)}.pt2"


def write_program_submission(folder: str | os.PathLike, card: dict, models: dict[str, dict[int, nn.Module]],
                             dims: dict | None = None) -> Path:
    """Export every model and write the card: the writer of exported-program submission folders.

    Args:
        folder: ``submissions/<entry>`` (created if needed).
        card: the card without ``format`` and the programs blocks: ``name``, ``authors``,
            ``paper_url``, ``code_url``, ``license``, ``architecture`` (``name``, ``stages``),
            ``training``, ``seeds``; ``datasets.<name>`` may carry ``test_acc``. ``num_parameters``
            defaults to the largest trainable parameter count over the models. ``tier`` defaults to
            ``self-reported`` (the board derives the tier anyway, :mod:`benchmark.rerun`).
        models: ``{dataset: {seed: model}}``; each is exported with :func:`export_program` to
            :func:`program_name` and its SHA-256 goes into the card.
        dims: ``{dataset: DatasetDims}`` (task, number of features); default: read from the
            registered dataset (:func:`benchmark.submissions.registry_dims`).

    Programs are written first and ``submission.json`` last (a folder with a card is complete).
    Raises :class:`UserError` naming the field when a dataset's seeds are not the card's ``seeds``
    or the finished card does not match ``benchmark/schemas/program_submission.schema.json`` (no
    card is written then).
    """
    from benchmark.files import atomic_write_json, sha256_file
    from benchmark.schemas import check_schema, raise_problems
    from benchmark.submission_card import SUBMISSION_FILE

    folder = Path(folder)
    seeds = sorted(int(s) for s in card.get("seeds", []))
    raise_problems([f"datasets.{d}.programs: seeds {sorted(int(s) for s in by_seed)}, but the card's seeds are {seeds}"
                    for d, by_seed in sorted(models.items()) if sorted(int(s) for s in by_seed) != seeds],
                   f"{folder}: programs do not match the card's seeds")
    if dims is None:
        from benchmark.submissions import registry_dims

        dims = {d: registry_dims(d) for d in models}
    blocks = {name: dict(block) for name, block in card.get("datasets", {}).items()}
    largest = 0
    for dataset, by_seed in sorted(models.items()):
        entries = {}
        for seed, model in sorted(by_seed.items(), key=lambda kv: int(kv[0])):
            rel = program_name(dataset, seed)
            export_program(model, dims[dataset].task, dims[dataset].num_features, folder / rel)
            entries[str(int(seed))] = {"path": rel, "sha256": sha256_file(folder / rel)}
            largest = max(largest, sum(p.numel() for p in model.parameters() if p.requires_grad))
        blocks[dataset] = {**blocks.get(dataset, {}), "programs": entries}
    full = {"tier": "self-reported", "num_parameters": largest, **card, "format": PROGRAM_FORMAT, "datasets": blocks}
    check_schema(full, "program_submission", "submission",
                 f"{folder / SUBMISSION_FILE}: the card being written is invalid")
    atomic_write_json(folder / SUBMISSION_FILE, full)
    return folder


# -- The submission ----------------------------------------------------------------------------------------------------

@dataclass
class ProgramSubmission:
    """A program submission whose card passed its schema and content checks (programs not loaded)."""

    entry: str
    folder: Path
    card: dict
    card_sha256: str
    format: str = PROGRAM_FORMAT

    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def architecture(self) -> str:
        return self.card["architecture"]["name"]

    @property
    def stages(self) -> list[str]:
        return list(self.card["architecture"]["stages"])

    @property
    def seeds(self) -> list[int]:
        return sorted(self.card["seeds"])

    @property
    def datasets(self) -> list[str]:
        return sorted(self.card["datasets"])

    def weights_entry(self, dataset: str, seed: int) -> dict:
        return self.card["datasets"][dataset]["programs"][str(seed)]

    def weights_path(self, dataset: str, seed: int) -> Path:
        """The program file (named so for :mod:`benchmark.leaderboard.provenance`, which hashes it)."""
        return self.folder / self.weights_entry(dataset, seed)["path"]


def read_program_submission(card_path: Path, entry: str, card: dict, card_sha: str,
                            datasets: list[str] | None) -> ProgramSubmission:
    """Schema, contents and paths of a ``"format": "torch.export"`` card at ``card_path`` (classes 2-4
    of intake; :func:`benchmark.submission_card.read_submission` reads the card and hands it over)."""
    from benchmark.graphs import dataset_names
    from benchmark.schemas import check_schema, raise_problems
    from benchmark.errors import unknown_choice

    folder = card_path.parent
    check_schema(card, "program_submission", "submission", f"{card_path}: schema violation")
    problems = []
    known = set(dataset_names())
    for name in sorted(card["datasets"]):
        if name not in known:
            problems.append(f"datasets.{name}: {unknown_choice('dataset', name, known)}")
    if datasets is not None:
        missing = sorted(set(datasets) - set(card["datasets"]))
        if missing:
            problems.append(f"datasets: the release scores {sorted(datasets)} but the card has no programs for {missing}")
    stages = card["architecture"]["stages"]
    if len(set(stages)) != len(stages):
        problems.append(f"architecture.stages: {stages} names a stage twice")
    seeds = {str(s) for s in card["seeds"]}
    for name, spec in sorted(card["datasets"].items()):
        if set(spec["programs"]) != seeds:
            problems.append(f"datasets.{name}.programs: seeds {sorted(spec['programs'], key=int)}, the card declares "
                            f"{sorted(card['seeds'])}")
    raise_problems(problems, f"{card_path}: invalid contents")
    sub = ProgramSubmission(entry, folder, card, card_sha)
    problems, root = [], folder.resolve()
    for dataset in sub.datasets:
        for seed in sub.seeds:
            raw = sub.weights_entry(dataset, seed)["path"]
            where = f"datasets.{dataset}.programs.{seed}.path {raw!r}"
            pure = PurePosixPath(raw)
            match = PROGRAM_NAME.match(pure.name)
            if "\\" in raw or pure.is_absolute() or ".." in pure.parts:
                problems.append(f"{where}: must be a relative POSIX path inside the entry folder")
            elif not match or int(match.group(1)) != seed:
                problems.append(f"{where}: the program for seed {seed} must be named seed-{seed}.pt2")
            elif not (folder / raw).resolve().is_relative_to(root):
                problems.append(f"{where}: resolves outside the entry folder (symlink?)")
    raise_problems(problems, f"{folder}: unsafe or misnamed program paths", IntegrityError)
    return sub


@dataclass
class CheckedPrograms:
    """A program submission that passed every check: ``models[dataset][i]`` is seed ``seeds[i]``."""

    submission: ProgramSubmission
    models: dict[str, list[ProgramModel]] = field(default_factory=dict)
    num_parameters: dict[str, int] = field(default_factory=dict)  # counted in the loaded programs
    weights_sha256: dict[str, dict[str, str]] = field(default_factory=dict)
    # dataset -> seed -> the red-flag checks' outcomes (benchmark.sanity), all passed
    red_flags: dict[str, dict[str, list[dict]]] = field(default_factory=dict)


def validate_programs(sub: ProgramSubmission, datasets: list[str], dims: dict, device: str = "cpu") -> CheckedPrograms:
    """Files, hashes, archive checks, loading, the outputs' shapes on a small graph of each dataset,
    and the red-flag checks (:mod:`benchmark.sanity`: deterministic, logits, input gradients,
    permutation equivariance, stages that depend on the input)."""
    from benchmark.files import sha256_file
    from benchmark.sanity import raise_red_flags, red_flags
    from benchmark.schemas import raise_problems

    files = [(d, s, sub.weights_path(d, s)) for d in datasets for s in sub.seeds]
    raise_problems([f"datasets.{d}.programs.{s}: file not found: {p}" for d, s, p in files if not p.is_file()],
                   f"{sub.folder}: missing program files")
    checked = CheckedPrograms(sub)
    problems = []
    for d, s, p in files:
        actual = sha256_file(p)
        checked.weights_sha256.setdefault(d, {})[str(s)] = actual
        if actual != sub.weights_entry(d, s)["sha256"]:
            problems.append(f"datasets.{d}.programs.{s} ({p.name}): SHA-256 is {actual}, the card says "
                            f"{sub.weights_entry(d, s)['sha256']}")
    raise_problems(problems, f"{sub.folder}: programs do not match their SHA-256", IntegrityError)
    for d, s, p in files:
        source = f"datasets.{d}.programs.{s} ({p.relative_to(sub.folder)})"
        try:
            model = load_program(p, dims[d].task, sub.stages, source)
            _check_outputs(model, dims[d], source)
            flags = red_flags(lambda x, e, b, m=model: m.stages(x, e, batch=b), dims[d].task, dims[d].num_features,
                              sub.stages)
            raise_red_flags(flags, source)
            checked.red_flags.setdefault(d, {})[str(s)] = [f.to_dict() for f in flags]
        except UserError as err:
            problems.append(str(err))
            continue
        checked.models.setdefault(d, []).append(model)
        checked.num_parameters[d] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    raise_problems(problems, f"{sub.folder}: programs refused", IntegrityError)
    return checked


@torch.inference_mode()
def _check_outputs(model: ProgramModel, dims, source: str) -> None:
    """Run the program once on a 5-node ring: logits ``[N or 1, num_classes]``, finite; stages ``[N, *]``."""
    n = 5
    x = torch.randn(n, dims.num_features, generator=torch.Generator().manual_seed(0))
    ring = torch.arange(n)
    edge_index = torch.stack([torch.cat([ring, (ring + 1) % n]), torch.cat([(ring + 1) % n, ring])])
    try:
        out = model.stages(x, edge_index, batch=torch.zeros(n, dtype=torch.long) if dims.task == "graph" else None)
    except IntegrityError:
        raise
    except Exception as err:  # noqa: BLE001 - a program that cannot run on a valid graph is refused
        raise _refuse(source, f"fails on a 5-node graph ({type(err).__name__}: {str(err)[:200]})") from None
    rows = n if dims.task == "node" else 1
    if tuple(out[0].shape) != (rows, dims.num_classes):
        raise _refuse(source, f"logits of shape {tuple(out[0].shape)} on a {n}-node graph; expected "
                              f"({rows}, {dims.num_classes})")
    if not all(torch.isfinite(t).all() for t in out if t.is_floating_point()):
        raise _refuse(source, "outputs NaN or Inf on a 5-node graph")
