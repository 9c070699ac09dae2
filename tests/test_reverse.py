"""The reverse direction of scores v2 (issue 12.2) on the tiny release v2 of tests/tiny_release.py:
the recognisability and consistency formulas on known inputs, a run interrupted after one seed
that resumes without redoing it (and recomputes the same bytes), the budget's refusal, exported
programs through the engine adapter, the results file's reverse block, and v1 left as it is."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmark.errors import UserError
from benchmark.evaluate import reverse as rv
from benchmark.evaluate.reverse import BudgetExceeded, ProgramStages, ReverseRun, recognisability
from benchmark.release.opened import Release
from benchmark.schemas import load_schema, schema_problems

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "submissions" / "gcn-baseline"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def release(built_v2):
    return Release.open(built_v2)


@pytest.fixture(scope="module")
def gcn_seeds(release):
    from benchmark.submissions import validate_submission

    checked = validate_submission(ENTRY, datasets=["Cora"], dims={"Cora": release.dims["Cora"]})
    return checked.models["Cora"], checked.submission.seeds


def _without_timing(block: dict) -> str:
    return json.dumps({k: v for k, v in block.items() if k != "timing"}, sort_keys=True)


def test_the_release_states_its_reverse_protocol_and_panel(release):
    protocol = release.reverse
    assert protocol.datasets == ("Cora",) and protocol.kinds == ("continuous",) and protocol.seeds == (0,)
    assert protocol.stages == ("early", "late", "logits") and protocol.metamer_options["max_iterations"] == 6
    assert [name for name, _ in release.panel("Cora")] == ["gcn3r-s1000"]
    original = release.original("Cora")
    assert original.role == "original" and int(original.target.sum()) == 1000  # the public split's test nodes
    with pytest.raises(UserError, match="no reference checkpoints of Photo"):
        release.panel("Photo")
    v1 = Release.open(ROOT / "data_cards" / "v1")
    assert v1.reverse is None
    with pytest.raises(UserError, match="states no reverse direction .* forward scores only"):
        ReverseRun(v1)


def test_recognisability_is_the_stated_ratio():
    assert float(recognisability(0.8, 0.6, 0.4)) == pytest.approx(0.5)
    assert float(recognisability(0.8, 0.8, 0.4)) == pytest.approx(1.0)
    assert float(recognisability(0.8, 0.3, 0.4)) == pytest.approx(-0.25)  # below the far twins: negative
    assert torch.isnan(recognisability(0.5, 0.7, 0.5))  # originals no better than far twins: undefined
    reps = recognisability(torch.tensor([0.9, 0.8]), torch.tensor([0.7, 0.5]), torch.tensor([0.5, 0.5]))
    assert torch.allclose(reps, torch.tensor([0.5, 0.0], dtype=torch.float64))


def _outcome(metamer_right: int, num: int = 50, valid: int = 40) -> dict[str, torch.Tensor]:
    """One seed's outcomes, one panel model: y = 0; on the ``valid`` first units the panel is right on 36
    originals, ``metamer_right`` metamers, 38 near twins and 12 far twins; on the invalid rest it is
    right on every far twin and wrong on every metamer (which must not count)."""
    pred = torch.ones(1, 4, num, dtype=torch.int16)
    for role, right in zip(range(4), (36, metamer_right, 38, 12)):
        pred[0, role, :right] = 0
    pred[0, 3, valid:] = 0
    key = "Cora/continuous/L1/s0"
    inp = torch.linspace(0.1, 1.0, 3 * num).view(3, num)
    return {f"{key}/pred": pred, f"{key}/y": torch.zeros(num, dtype=torch.int16),
            f"{key}/valid": (torch.arange(num) < valid).to(torch.uint8), f"{key}/input_sim": inp,
            f"{key}/act_sim": 2 * inp ** 3}  # a monotone function of input similarity: rho = 1


def test_scores_on_known_outcomes(release):
    run = ReverseRun(release, num_bootstrap=200, use_cache=False)
    meta = {"jobs": {"Cora/continuous/L1/s0": {"dataset": "Cora", "kind": "continuous", "layer": 1,
                                               "stage": "early", "seed": 0, "rel_loss": 0.1, "iterations": 6,
                                               "best_iteration": 5, "status": "ran"}}}
    block = run.score([_outcome(28), _outcome(28), _outcome(20)], [meta] * 3, [0, 1, 2])
    (row,) = block["by_stage"]
    s = row["scores"]
    assert row["num_units"] == [40, 40, 40] and not row["small_sample"] and row["layer"] == 1
    assert s["panel_clean_acc"]["mean"] == 0.9 and s["panel_far_acc"]["mean"] == 0.3
    assert s["panel_near_acc"]["mean"] == 0.95
    assert s["panel_metamer_acc"]["mean"] == pytest.approx((0.7 + 0.7 + 0.5) / 3, abs=1e-6)
    # per seed (0.7 - 0.3) / (0.9 - 0.3) = 2/3 twice and (0.5 - 0.3) / 0.6 = 1/3, then the mean over seeds
    assert s["recognisability"]["mean"] == pytest.approx(5 / 9, abs=1e-6)
    assert s["recognisability"]["std"] == pytest.approx(float(torch.tensor([2 / 3, 2 / 3, 1 / 3]).std()), abs=1e-6)
    assert s["consistency"]["mean"] == 1.0 and s["metamer_validity"]["mean"] == 0.8
    for interval in s.values():
        assert interval["ci_low"] <= interval["mean"] <= interval["ci_high"]
    assert row["by_panel"] == [{"reference_model": "gcn3r-s1000", "clean_acc": 0.9, "metamer_acc": 0.633333,
                                "near_acc": 0.95, "far_acc": 0.3, "recognisability": 0.555556}]
    assert block["panel"] == {"Cora": ["gcn3r-s1000"]} and block["seeds"] == [0, 1, 2]


def test_an_interrupted_run_resumes_without_redoing_a_finished_seed(release, gcn_seeds, tmp_path, monkeypatch):
    models, seeds = gcn_seeds
    real = rv.run_seed
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(args[5])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the second seed is cut off, as by Ctrl-C
        return real(*args, **kwargs)

    monkeypatch.setattr(rv, "run_seed", interrupted)
    run = ReverseRun(release, num_bootstrap=100, cache_root=tmp_path, budget_s=None)
    with pytest.raises(KeyboardInterrupt):
        run.run({"Cora": models}, seeds, "gcn-baseline")
    files = sorted(tmp_path.rglob("*.safetensors"))
    assert [f.name for f in files] == ["seed-0.safetensors"]  # written whole, and only the finished seed
    assert not list(tmp_path.rglob("*.tmp*"))

    calls.clear()
    monkeypatch.setattr(rv, "run_seed", lambda *a, **k: calls.append(a[5]) or real(*a, **k))
    block = run.run({"Cora": models}, seeds, "gcn-baseline")
    assert calls == ["gcn-baseline s1", "gcn-baseline s2"]  # seed 0 came from the cache
    assert schema_problems({"reverse": block}, {**load_schema("result"), "required": []}, "result") == []
    stages = [(r["stage"], r["layer"]) for r in block["by_stage"]]
    assert stages == [("hidden", 1), ("logits", 2)]  # a 2-layer GCN: one hidden layer, then the logits
    assert block["timing"]["within_budget"] and len(block["timing"]["seed_cpu_s"]) == 3
    assert all(t > 0 for t in block["timing"]["seed_cpu_s"])  # a cached seed keeps its measured time

    # Determinism: seed 0 recomputed from scratch gives the cached bytes; a second run reads everything.
    cached, _ = rv.read_cached(files[0])
    fresh, _ = real(models[0], release, release.reverse, run.panels, run.originals, "again", False)
    assert sorted(cached) == sorted(fresh) and all(torch.equal(cached[k], fresh[k]) for k in cached)
    calls.clear()
    again = run.run({"Cora": models}, seeds, "gcn-baseline")
    assert calls == [] and _without_timing(again) == _without_timing(block)


def test_the_budget_stops_a_run_and_keeps_its_finished_seeds(release, gcn_seeds, tmp_path):
    models, seeds = gcn_seeds
    with pytest.raises(UserError, match="reverse budget must be > 0 seconds"):
        ReverseRun(release, budget_s=0)
    run = ReverseRun(release, num_bootstrap=50, cache_root=tmp_path, budget_s=1.0)
    with pytest.raises(BudgetExceeded, match=r"would take about \d+ CPU s for 3 seeds \(\d+ s for 1\), over its budget "
                                             r"of 1 s; the finished seeds are cached"):
        run.run({"Cora": models}, seeds, "gcn-baseline")
    assert [f.name for f in tmp_path.rglob("*.safetensors")] == ["seed-0.safetensors"]
    with pytest.raises(UserError, match=r"runs on \['Cora'\]; no models for \['Cora'\]"):
        run.run({"CiteSeer": models}, seeds, "gcn-baseline")


def test_exported_programs_run_in_reverse_through_the_adapter(release, skipgcn_cora, tmp_path):
    from benchmark.programs import export_program, load_program

    path = export_program(skipgcn_cora[0], "node", 1433, tmp_path / "seed-0.pt2")
    program = load_program(path, "node", ["conv1"])
    model = ProgramStages(program, 1433, 7, "skipgcn")
    x, e = release.original("Cora").x, release.original("Cora").edge_index
    with torch.no_grad():
        logits, h1 = program.stages(x, e)
        assert torch.equal(model.stage(x, e, stage=1), h1) and torch.equal(model.stage(x, e, stage=2), logits)
    with pytest.raises(UserError, match=r"valid stages: 1\.\.1 \(declared \['conv1'\]\) and 2 \(the logits\)"):
        model.check_stage(3)
    run = ReverseRun(release, num_bootstrap=50, use_cache=False, budget_s=None)
    block = run.run({"Cora": [program]}, [0], "skipgcn")
    assert [(r["stage"], r["layer"]) for r in block["by_stage"]] == [("hidden", 1), ("logits", 2)]
    assert block["by_stage"][0]["scores"]["metamer_validity"]["mean"] > 0


def test_evaluate_writes_both_directions_on_a_release_that_states_reverse(built_v2, tmp_path, monkeypatch):
    from benchmark.reproduce import compare_results
    from benchmark.scoring import evaluate_submission

    import copy

    from benchmark.evaluate import Evaluator

    monkeypatch.setenv("METAMER_BENCH_CACHE", str(tmp_path))
    # The tiny release's sets (6 engine steps) fail their controls, so none is ranked and the forward
    # direction has no aggregate; counted as ranked here, which the reverse direction does not read.
    opened = Release.open(built_v2)
    manifest = copy.deepcopy(opened.manifest)
    for entry in manifest["sets"]:
        entry["ranked"] = True
    release = Release(opened.root, manifest, opened.manifest_sha256, opened.mode)
    evaluator = Evaluator(release, num_bootstrap=50)
    result = evaluate_submission(ENTRY, release, evaluator=evaluator, reverse_budget_s=None)
    assert schema_problems(result, load_schema("result"), "result") == []
    assert result["reverse"]["protocol"]["kinds"] == ["continuous"] and result["aggregate"]["transfer"]
    assert list(tmp_path.glob("reverse/*/seed-*.safetensors"))
    skipped = evaluate_submission(ENTRY, release, evaluator=evaluator, reverse=False)
    assert "reverse" not in skipped
    # reverse.timing describes the run, not the result: --reproduce does not compare it.
    moved = json.loads(json.dumps(result))
    moved["reverse"]["timing"]["compute_s"] += 100.0
    assert compare_results(moved, result).ok
    moved["reverse"]["by_stage"][0]["scores"]["recognisability"]["mean"] = 7.0
    assert not compare_results(moved, result).ok
    # A prediction-only result has no reverse block: nothing of the model runs.
    fake = {**result, "prediction_only": True}
    assert any("reverse" in p for p in schema_problems(fake, load_schema("result"), "result"))
