"""The predictions route (issue 14, item 2) on the shipped release v1 (Cora), with a plain-PyG model
trained here: template, writer (outputs sharing memory), header checks, score-predictions, the board."""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from benchmark.cli import main
from benchmark.errors import IntegrityError, UserError
from benchmark.files import read_json
from benchmark.predictions import (
    PREDICTIONS_FILE, check_predictions_header, expected_shapes, prediction_inputs, score_predictions,
    write_predictions,
)
from benchmark.schemas import load_schema, schema_problems

RELEASE = Path(__file__).resolve().parents[1] / "data_cards" / "v1"
SEEDS = [0, 1, 2]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def skip_models(skipgcn_cora):
    return skipgcn_cora


@pytest.fixture(scope="module")
def shared_outputs(cora_eval, skip_models):
    """Logits ``{record_id: [3, N, C]}`` where outputs share memory: one tensor per distinct graph
    (records with the same graph get the same object) and each a view into one big buffer."""
    done, slices = {}, {}
    with torch.no_grad():
        for record_id, data in prediction_inputs(evaluator=cora_eval):
            key = (data.x.data_ptr(), data.edge_index.data_ptr())
            if key not in done:
                done[key] = torch.stack([m(data.x, data.edge_index)[0] for m in skip_models])
            slices[record_id] = done[key]
    big = torch.cat([t.reshape(3, -1) for t in done.values()], dim=1)  # one buffer, the outputs are views
    views, offset = {}, 0
    for key, t in done.items():
        n = t[0].numel()
        views[key] = big[:, offset:offset + n].view(t.shape)
        offset += n
    out = {}
    for record_id, data in prediction_inputs(evaluator=cora_eval):
        out[record_id] = views[(data.x.data_ptr(), data.edge_index.data_ptr())]
    return out


def test_template_lists_every_record_and_its_shape(tmp_path, cora_eval, capsys):
    assert main(["predict-template", "--release", str(RELEASE), "--dataset", "Cora", "--out", str(tmp_path)]) == 0
    doc = read_json(tmp_path / "template.json")
    assert doc["release"]["name"] == "metamer-bench-v1"
    assert doc["datasets"] == {"Cora": {"task": "node", "num_features": 1433, "num_classes": 7, "records": 84}}
    assert [r["id"] for r in doc["records"]] == sorted(cora_eval.records)
    assert {tuple(r["shape"]) for r in doc["records"]} == {(2708, 7)}
    assert {r["role"] for r in doc["records"]} == {"original", "metamer", "near", "far"}


def test_predictions_route_end_to_end(tmp_path, cora_eval, shared_outputs):
    # The outputs share memory: safetensors' own writer refuses them, the documented one does not.
    ids = sorted(shared_outputs)
    twins = [r for r in ids if shared_outputs[r] is shared_outputs[ids[0]]]
    assert len(twins) > 1  # records on the same graph share one output tensor
    with pytest.raises(RuntimeError, match="share memory"):
        one = shared_outputs[twins[0]].contiguous()
        save_file({r: one for r in twins}, str(tmp_path / "plain.safetensors"))
    with pytest.raises((RuntimeError, ValueError)):  # views into one buffer: refused as well
        save_file(dict(shared_outputs), str(tmp_path / "plain.safetensors"))
    entry = "skipgcn-preds"
    submissions = tmp_path / "submissions"
    pred = write_predictions(submissions / entry / PREDICTIONS_FILE, shared_outputs, SEEDS, "logits", model="skipgcn")

    out = submissions / "results" / f"{entry}.json"
    assert main(["score-predictions", str(pred), "--name", entry, "--release", str(RELEASE), "--out", str(out),
                 "--dataset", "Cora", "--author", "A. Researcher", "--bootstrap", "200"]) == 0
    result = read_json(out)
    assert result["prediction_only"] is True and result["submission"]["tier"] == "self-reported"
    assert result["submission"]["architecture"] == "skipgcn"
    assert schema_problems(result, load_schema("result"), "result") == []
    # Same numbers as the evaluator's library call on the in-memory outputs.
    direct = cora_eval.eval_predictions({"type": "logits", "seeds": SEEDS, "model": "skipgcn",
                                         "outputs": shared_outputs})
    assert result["aggregate"] == direct["aggregate"]
    assert 0.7 < result["clean_acc_by_dataset"]["Cora"] < 0.9

    # CI re-scores prediction-only files too (issue 17.1): --reproduce writes nothing and compares.
    again = ["score-predictions", str(pred), "--name", entry, "--release", str(RELEASE), "--out", str(out),
             "--dataset", "Cora", "--bootstrap", "200", "--reproduce"]
    before = out.read_bytes()
    assert main(again) == 0 and out.read_bytes() == before
    tampered = json.loads(before)
    tampered["aggregate"]["clean_acc"]["mean"] += 0.01
    out.write_text(json.dumps(tampered))
    assert main(again) == 1

    # The schema refuses a prediction-only file that calls itself re-run or carries weights hashes.
    for edit in ({"tier": "re-run"}, {"weights_sha256": {}}):
        bad = json.loads(json.dumps(result))
        bad["submission"].update(edit)
        assert schema_problems(bad, load_schema("result"), "result")

    # The board shows it as prediction-only; provenance ties it to the predictions file.
    from benchmark.leaderboard import build_boards, load_results, render_json, row_cells
    from benchmark.leaderboard.provenance import provenance_problems

    def problems():  # scored on Cora only: the board also says the other datasets of v1 are missing
        found = provenance_problems(result, out.name, submissions)
        assert any(p.startswith("accuracy_floor covers ['Cora']") for p in found)
        return [p for p in found if not p.startswith("accuracy_floor covers")]

    assert problems() == []
    rows = load_results(submissions / "results")
    assert rows[0].prediction_only and row_cells(rows[0])[-2] == "prediction-only"
    board = json.loads(render_json(build_boards(rows)))
    assert board["releases"][0]["rows"][0]["prediction_only"] is True
    assert board["releases"][0]["rows"][0]["tier"] == "self-reported"
    (submissions / entry / PREDICTIONS_FILE).write_bytes(pred.read_bytes()[:-4] + b"\0\0\0\0")
    assert "scored as" in problems()[0]
    (submissions / entry / PREDICTIONS_FILE).unlink()
    assert "predictions file they were scored from" in problems()[0]


def _with_header(path: Path, edit) -> Path:
    """Rewrite a safetensors file's JSON header with ``edit(header)`` (data bytes unchanged)."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    edit(header)
    text = json.dumps(header).encode()
    out = path.with_name(f"edited-{path.name}")
    out.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length:])
    return out


def test_predictions_file_is_checked_from_its_header(tmp_path, cora_eval, shared_outputs):
    shapes = expected_shapes(cora_eval)
    good = write_predictions(tmp_path / "p.safetensors", shared_outputs, SEEDS)
    assert check_predictions_header(good, shapes)["seeds"] == SEEDS
    first = sorted(shapes)[0]

    def refused(path, *needles):
        with pytest.raises(IntegrityError) as info:
            check_predictions_header(path, shapes)
        for needle in needles:
            assert needle in str(info.value), str(info.value)

    missing = dict(shared_outputs)
    del missing[first]
    refused(write_predictions(tmp_path / "m.safetensors", missing, SEEDS), "predictions.outputs: no tensor for 1")
    extra = {**shared_outputs, "not-a-record": shared_outputs[first]}
    refused(write_predictions(tmp_path / "x.safetensors", extra, SEEDS), "'not-a-record'")
    refused(write_predictions(tmp_path / "s.safetensors", shared_outputs, [0, 1]),
            f"predictions.outputs['{first}'].shape[0]: 3, expected 2")
    wrong = {**shared_outputs, first: shared_outputs[first][:, :10]}
    refused(write_predictions(tmp_path / "w.safetensors", wrong, SEEDS),
            f"predictions.outputs['{first}'].shape[1]: 10, expected 2708")
    ints = {**shared_outputs, first: shared_outputs[first].long()}
    refused(write_predictions(tmp_path / "i.safetensors", ints, SEEDS), ".dtype: I64; valid dtypes: F16")
    refused(_with_header(good, lambda h: h["__metadata__"].update(type="softmax")),
            "predictions.type: 'softmax'; valid types: logits, probs")
    refused(_with_header(good, lambda h: h["__metadata__"].update(seeds="[0, 0, 1]")), "predictions.seeds")
    # A header that declares a huge tensor is refused from the file's size, before anything is read.
    huge = tmp_path / "huge.safetensors"
    with open(huge, "wb") as handle:
        handle.write(struct.pack("<Q", 2))
        handle.write(b"{}")
        handle.truncate(10 << 30)  # sparse: 10 GiB on paper, nothing on disk
    refused(huge, "refused before reading")
    torch.save({"x": 1}, tmp_path / "pickle.safetensors")
    refused(tmp_path / "pickle.safetensors", "pickle")


def test_non_finite_predictions_are_refused(tmp_path, cora_eval, shared_outputs):
    first = sorted(shared_outputs)[0]
    bad = {**shared_outputs, first: shared_outputs[first].clone()}
    bad[first][1, 5, 2] = float("nan")
    path = write_predictions(tmp_path / "nan.safetensors", bad, SEEDS)
    with pytest.raises(IntegrityError, match=f"NaN or Inf values are refused: {first}"):
        score_predictions(path, "nan-entry", evaluator=cora_eval)
    with pytest.raises(UserError, match="not a valid entry name"):
        score_predictions(path, "../escape", evaluator=cora_eval)
    assert main(["score-predictions", str(path), "--name", "nan-entry", "--release", str(RELEASE),
                 "--out", str(tmp_path / "r.json")]) == 1
    assert not (tmp_path / "r.json").exists()
