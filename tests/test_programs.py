"""Exported-program submissions (issue 14, items 1 and 3) on the shipped release v1 (Cora).

A plain-PyG model written in the tests (two GCNConv + GELU + a linear skip) is exported per seed,
submitted with a card, loaded without running submitted Python, and scored in the forward
direction. Planted payloads (a pickle, Python in a sympy expression, Python in a guard) are
refused before anything runs: each would create a file, and the file is never there. The same
payloads do run under a bare ``torch.export.load`` (the control tests), so the refusals matter.
"""
from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pytest
import torch

from benchmark.errors import IntegrityError
from benchmark.files import sha256_file
from benchmark.programs import check_program_archive, export_program, graph_problems, load_program
from benchmark.schemas import load_schema, schema_problems
from benchmark.scoring import evaluate_submission

RELEASE = Path(__file__).resolve().parents[1] / "data_cards" / "v1"
SEEDS = [0, 1, 2]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def program_path(tmp_path_factory, skipgcn_cora):
    return export_program(skipgcn_cora[0], "node", 1433, tmp_path_factory.mktemp("prog") / "seed-0.pt2")


def write_entry(folder: Path, models, stages=("conv1",)) -> Path:
    programs = {}
    for seed, model in zip(SEEDS, models):
        path = export_program(model, "node", 1433, folder / "Cora" / f"seed-{seed}.pt2")
        programs[str(seed)] = {"path": f"Cora/seed-{seed}.pt2", "sha256": sha256_file(path)}
    card = {"format": "torch.export", "name": "SkipGCN (plain PyG)", "authors": ["A. Researcher"], "paper_url": None,
            "code_url": None, "license": "MIT", "tier": "self-reported",
            "architecture": {"name": "skipgcn", "stages": list(stages)},
            "training": {"data": "Cora public split, train nodes", "recipe": "Adam lr 0.01, wd 5e-4, 100 epochs"},
            "seeds": SEEDS, "num_parameters": sum(p.numel() for p in models[0].parameters()),
            "datasets": {"Cora": {"programs": programs}}}
    (folder / "submission.json").write_text(json.dumps(card, indent=2))
    return folder


def test_plain_pyg_model_is_exported_submitted_and_scored(tmp_path, cora_eval, skipgcn_cora):
    entry = write_entry(tmp_path / "submissions" / "skipgcn", skipgcn_cora)
    start = time.perf_counter()
    result = evaluate_submission(entry, RELEASE, evaluator=cora_eval)
    program_s = time.perf_counter() - start
    assert result["submission"]["format"] == "torch.export" and result["submission"]["stages"] == ["conv1"]
    assert result["submission"]["architecture"] == "skipgcn"
    assert schema_problems(result, load_schema("result"), "result") == []
    # The same models run eagerly give the same scores (the program is the model).
    start = time.perf_counter()
    logits = {}
    with torch.no_grad():
        for record_id, record in sorted(cora_eval.records.items()):
            logits[record_id] = torch.stack([m(record.x, record.edge_index)[0] for m in skipgcn_cora])
    eager = cora_eval.eval_predictions({"type": "logits", "seeds": SEEDS, "model": "skipgcn", "outputs": logits})
    eager_s = time.perf_counter() - start
    assert result["aggregate"] == eager["aggregate"]
    assert 0.7 < result["clean_acc_by_dataset"]["Cora"] < 0.9
    print(f"scoring 3 programs on v1/Cora: {program_s:.1f} s (with intake); eager model + eval_predictions: "
          f"{eager_s:.1f} s")


def test_program_returns_declared_stages(program_path, cora):
    model = load_program(program_path, "node", ["conv1"])
    data = cora.data
    logits, h1 = model.stages(data.x, data.edge_index)
    assert logits.shape == (data.num_nodes, 7) and h1.shape == (data.num_nodes, 32)
    with pytest.raises(IntegrityError, match=r"returns 2 outputs; the card declares logits and 2 stage\(s\)"):
        load_program(program_path, "node", ["conv1", "conv2"])
    with pytest.raises(IntegrityError, match="a graph-task program takes x, edge_index, edge_weight, batch"):
        load_program(program_path, "graph", ["conv1"])


# -- Planted payloads -----------------------------------------------------------------------------------------------

class _Payload:
    """Unpickling this creates ``path``: proof that a pickle ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def rewrite(src: Path, dst: Path, edit=None, add: dict | None = None) -> Path:
    """Copy a program archive member by member (stored, as torch writes it), ``edit(name, bytes)``
    changing members and ``add`` appending new ones."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        root = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            data = zin.read(info.filename)
            name = info.filename[len(root) + 1:]
            zout.writestr(info, edit(name, data) if edit else data)
        for name, data in (add or {}).items():
            zout.writestr(f"{root}/{name}", data)
    return dst


def pickled(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"inputs": _Payload(marker)}, buffer)
    return buffer.getvalue()


def test_raw_torch_export_load_runs_a_planted_pickle_control(tmp_path, program_path):
    """Control: torch.export.load itself unpickles example inputs (falling back to weights_only=False)."""
    marker = tmp_path / "ran"
    evil = rewrite(program_path, tmp_path / "evil.pt2",
                   lambda n, d: pickled(marker) if n == "data/sample_inputs/model.pt" else d)
    try:
        torch.export.load(str(evil))
    except Exception:  # noqa: BLE001 - whether it loads does not matter, only whether the payload ran
        pass
    assert marker.exists()


@pytest.mark.parametrize("plant", ["sample_inputs", "data.pkl", "extra_member", "use_pickle"])
def test_planted_pickle_is_refused_without_running(tmp_path, program_path, plant):
    marker = tmp_path / "ran"
    payload = pickled(marker)
    if plant == "sample_inputs":
        evil = rewrite(program_path, tmp_path / "e.pt2",
                       lambda n, d: payload if n == "data/sample_inputs/model.pt" else d)
        needle = "'data/sample_inputs/model.pt': holds example inputs, a torch.save (pickle) stream"
    elif plant == "data.pkl":
        evil = rewrite(program_path, tmp_path / "e.pt2", add={"data.pkl": payload[:0] + b"\x80\x04K\x01."})
        needle = "member 'data.pkl': a pickle stream"
    elif plant == "extra_member":
        evil = rewrite(program_path, tmp_path / "e.pt2", add={"data/weights/model.pt": payload})
        needle = "member 'data/weights/model.pt': a pickle stream"
    else:  # a weight whose config says use_pickle, holding the payload
        def edit(name, data):
            if name == "data/weights/model_weights_config.json":
                config = json.loads(data)
                config["config"]["skip.bias"]["use_pickle"] = True
                return json.dumps(config).encode()
            return data
        weight = json.loads(zipfile.ZipFile(program_path).read(
            f"{zipfile.ZipFile(program_path).namelist()[0].split('/')[0]}/data/weights/model_weights_config.json"))
        target = weight["config"]["skip.bias"]["path_name"]
        evil = rewrite(program_path, tmp_path / "e.pt2",
                       lambda n, d: payload if n == f"data/weights/{target}" else edit(n, d))
        needle = "'skip.bias': use_pickle is True; pickled tensors can run code"
    with pytest.raises(IntegrityError) as info:
        load_program(evil, "node", ["conv1"])
    assert needle in str(info.value), str(info.value)
    assert not marker.exists()


def test_python_in_a_sympy_expression_or_a_guard_is_refused_without_running(tmp_path, program_path):
    marker = tmp_path / "ran"
    code = f"__import__('pathlib').Path('{marker}').touch()"

    def plant_expr(name, data):
        if name != "models/model.json":
            return data
        text = data.decode()
        first = text.index('"expr_str": "') + len('"expr_str": "')
        return (text[:first] + code.replace("'", "\\u0027") + " or " + text[first:]).encode()

    evil = rewrite(program_path, tmp_path / "expr.pt2", plant_expr)
    try:  # control: a bare torch.export.load evaluates it
        torch.export.load(str(evil))
    except Exception:  # noqa: BLE001
        pass
    assert marker.exists()
    marker.unlink()
    with pytest.raises(IntegrityError, match="name '__import__' is not a sympy function"):
        load_program(evil, "node", ["conv1"])
    assert not marker.exists()

    def plant_guard(name, data):
        if name != "models/model.json":
            return data
        model = json.loads(data)
        model["guards_code"] = [code]
        return json.dumps(model).encode()

    evil = rewrite(program_path, tmp_path / "guard.pt2", plant_guard)
    with pytest.raises(IntegrityError, match=r"guards_code\[0\].*guards are exec'd by torch, refused"):
        load_program(evil, "node", ["conv1"])
    assert not marker.exists()


class _Noisy(torch.nn.Module):
    """A model whose forward draws random numbers: ``aten.rand_like`` is outside the allow-list."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1433, 7)

    def forward(self, x, edge_index, edge_weight=None, batch=None):
        h = x + 1e-3 * torch.rand_like(x)
        return self.lin(h), h


def test_a_disallowed_operator_is_refused_by_name(tmp_path):
    path = export_program(_Noisy(), "node", 1433, tmp_path / "seed-0.pt2")
    with pytest.raises(IntegrityError, match=r"operator aten\.rand_like\.default .* is not in the allow-list"):
        check_program_archive(path)
    with pytest.raises(IntegrityError, match=r"aten\.rand_like\.default"):
        load_program(path, "node", ["noisy"])


def test_sizes_are_checked_before_allocation(tmp_path, program_path):
    def inflate(name, data):
        if name != "data/weights/model_weights_config.json":
            return data
        config = json.loads(data)
        meta = config["config"]["conv1.lin.weight"]["tensor_meta"]
        meta["sizes"] = [{"as_int": 1 << 20}, {"as_int": 1 << 20}]  # 4 TiB of float32
        meta["strides"] = [{"as_int": 1 << 20}, {"as_int": 1}]
        return json.dumps(config).encode()

    evil = rewrite(program_path, tmp_path / "big.pt2", inflate)
    with pytest.raises(IntegrityError, match=r"'conv1.lin.weight': sizes \[1048576, 1048576\] .* need 4398046511104 "
                                             r"bytes, member weight_\d+ holds 183424"):
        load_program(evil, "node", ["conv1"])
    compressed = tmp_path / "zipped.pt2"
    with zipfile.ZipFile(program_path) as zin, zipfile.ZipFile(compressed, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    with pytest.raises(IntegrityError, match="compressed; torch.export.save stores members uncompressed"):
        load_program(compressed, "node", ["conv1"])


@pytest.mark.parametrize("guard, ok", [
    ("L['x'].size()[0] >= 2", True),
    ("L['batch'].size()[0] == 1 or L['x'].size()[0] == L['batch'].size()[0]", True),  # what pooling emits
    ("L['x'].size()[0] == 1 and L['edge_index'].size()[1] > 3 or 4 < 5", True),
    ("L['x'].size()[0] == 1 or __import__('os').system('true')", False),
    ("L['x'].size()[0] == 1 or", False),
    ("(L['x'].size()[0] == 1)", False),
    ("L['x'].size()[0] == 1 or L['x'].shape[0] == 2", False),
])
def test_guards_are_size_comparisons_joined_by_and_or(guard, ok):
    model = {"graph_module": {"graph": {"nodes": []}}, "opset_version": {"aten": 10}, "guards_code": [guard]}
    problems = graph_problems(model)
    assert (problems == []) == ok, problems
    if not ok:
        assert "guards_code[0]" in problems[0] and "joined by and/or" in problems[0]
