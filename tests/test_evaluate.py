"""Evaluator: golden scores on hand-built frozen sets, the predictions schema, real models on Cora."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from scipy.spatial.distance import jensenshannon
from scipy.stats import spearmanr

from benchmark.errors import UserError
from benchmark.evaluate import Evaluator
from benchmark.records import FrozenSet, GraphRecord
from benchmark.schemas import load_schema, schema_problems

RELEASE = {"name": "toy", "version": "0.0.1", "manifest_sha256": "0" * 64}


pytestmark = pytest.mark.usefixtures("one_thread")


def record(rid, role, parent, dataset, task, y, target, valid, sim, num_nodes=4, seed=0):
    original = role == "original"
    return GraphRecord(
        id=rid, role=role, parent_id=parent, dataset=dataset, task=task,
        reference_model="" if original else "gcn", kind="" if original else "feature",
        layer=0 if original else 1, seed=-1 if original else seed, graph_index=0,
        x=torch.ones(num_nodes, 3), edge_index=torch.tensor([[0, 1], [1, 0]]), y=torch.tensor(y),
        target=torch.tensor(target, dtype=torch.bool), valid=torch.tensor(valid, dtype=torch.bool),
        similarity=torch.tensor(sim, dtype=torch.float32))


# Node set "Toy": 4 nodes, labels 0 1 0 1, test nodes 0 1 2 (node 3 is not scored).
def node_set() -> FrozenSet:
    y, target = [0, 1, 0, 1], [1, 1, 1, 0]
    args = ("Toy", "node", y, target)
    return FrozenSet("Toy", "node", "gcn", "feature", 1,
                     [record("o", "original", None, *args, [1, 1, 1, 1], [1.0, 1, 1, 1])],
                     [record("m", "metamer", "o", *args, [1, 1, 0, 1], [0.2, 0.4, 0.1, 0.9]),  # node 2 invalid
                      record("n", "near", "o", *args, [1, 1, 1, 1], [0.95, 0.9, 0.99, 1.0]),
                      record("f", "far", "o", *args, [1, 1, 1, 1], [0.3, 0.1, 0.5, 0.2])])


# Graph set "ToyG": test graphs g0 (label 0) and g1 (label 1); g1's metamer failed validity.
def graph_set() -> FrozenSet:
    def g(rid, role, parent, label, valid, sim):
        return record(rid, role, parent, "ToyG", "graph", [label], [1, 1, 1], [valid], sim, num_nodes=3)

    return FrozenSet("ToyG", "graph", "gin", "structure", 2,
                     [g("g0", "original", None, 0, 1, [1.0, 1, 1]), g("g1", "original", None, 1, 1, [1.0, 1, 1])],
                     [g("g0m", "metamer", "g0", 0, 1, [0.1, 0.2, 0.3]), g("g1m", "metamer", "g1", 1, 0, [0.5, 0.5, 0.5]),
                      g("g0n", "near", "g0", 0, 1, [0.9, 1.0, 0.95]), g("g1n", "near", "g1", 1, 1, [0.8, 0.85, 0.9]),
                      g("g0f", "far", "g0", 0, 1, [0.3, 0.4, float("nan")]), g("g1f", "far", "g1", 1, 1, [0.0, 0.1, 0.2])])


def two_class(rows):
    return [[p, 1.0 - p] for p in rows]


# P(class 0) per record and node, for model seeds A and B (worked through in the comments below).
NODE_A = {"o": [.9, .2, .4, .5], "m": [.3, .2, .5, .5], "n": [.9, .4, .6, .5], "f": [.4, .7, .45, .5]}
NODE_B = {"o": [.8, .6, .7, .5], "m": [.8, .1, .5, .5], "n": [.7, .6, .9, .5], "f": [.1, .2, .3, .5]}
GRAPH_A = {"g0": .8, "g1": .3, "g0m": .6, "g1m": .9, "g0n": .7, "g1n": .6, "g0f": .2, "g1f": .1}
GRAPH_B = {"g0": .4, "g1": .2, "g0m": .3, "g1m": .9, "g0n": .45, "g1n": .1, "g0f": .9, "g1f": .8}


def toy_predictions() -> dict:
    outputs = {k: [two_class(NODE_A[k]), two_class(NODE_B[k])] for k in NODE_A}
    outputs.update({k: [two_class([GRAPH_A[k]]), two_class([GRAPH_B[k]])] for k in GRAPH_A})
    return {"type": "probs", "seeds": [0, 1], "model": "toy", "outputs": outputs}


@pytest.fixture()
def toy():
    return Evaluator([node_set(), graph_set()], reference_acc={"Toy": 0.7, "ToyG": 0.9},
                     num_classes={"Toy": 2, "ToyG": 2}, release_info=RELEASE, num_bootstrap=300)


def by_key(result, key):
    return next(s for s in result["sets"] if s["key"] == key)["scores"]


def test_golden_node_set(toy):
    scores = by_key(toy.eval_predictions(toy_predictions()), "Toy/gcn/feature/L1")
    # Matched observations: nodes 0 and 1 (node 2's metamer is invalid, so its twins do not count either).
    # Seed A: clean 2/3 over all test nodes (node 2 wrong), 2/2 on the matched nodes; metamer right 1/2,
    # changed 1/2; near right 2/2, unchanged 2/2; far right 0/2. transfer (1/2-0)/(1-0) = 1/2;
    # IC (1+1/2)/2 = 3/4; ic_correct: both right, near kept 2, metamer changed 1: 3/4.
    # Seed B: clean 2/3, matched 1/2 (node 1 wrong); metamer right 2/2, changed 1/2; near right 1/2,
    # unchanged 2/2; far right 1/2. transfer undefined (gap 0); IC 3/4; ic_correct: node 0 only, 1/2.
    # ic_order: in each seed and node two of the three pairs are in the order near > metamer > far.
    half = 2 ** -1.5  # std of two values 1/2 apart
    expected = {"clean_acc": (2 / 3, 0.0), "matched_clean_acc": (0.75, half), "metamer_acc": (0.75, half),
                "near_acc": (0.75, half), "far_acc": (0.25, half), "transfer": (0.5, 0.0),
                "invariance_consistency": (0.75, 0.0), "ic_correct": (0.625, 0.25 / 2 ** 0.5),
                "ic_order": (2 / 3, 0.0)}
    for name, (mean, std) in expected.items():
        assert scores[name]["mean"] == pytest.approx(mean, abs=1e-6), name
        assert scores[name]["std"] == pytest.approx(std, abs=1e-6), name


def test_golden_spearman_matches_scipy(toy):
    scores = by_key(toy.eval_predictions(toy_predictions()), "Toy/gcn/feature/L1")
    sims = {r.id: r.similarity for r in node_set().variants}
    observed = [("m", [0, 1]), ("n", [0, 1]), ("f", [0, 1])]  # the matched nodes
    rhos = []
    for table in (NODE_A, NODE_B):
        xs = [float(sims[r][v]) for r, nodes in observed for v in nodes]
        ys = [1 - jensenshannon(two_class(table[r])[v], two_class(table["o"])[v], base=2)
              for r, nodes in observed for v in nodes]
        rhos.append(spearmanr(xs, ys).statistic)
    assert scores["ic_spearman"]["mean"] == pytest.approx(np.mean(rhos), abs=1e-6)
    assert scores["ic_spearman"]["std"] == pytest.approx(np.std(rhos, ddof=1), abs=1e-6)


def test_golden_graph_set_and_undefined_transfer(toy):
    result = toy.eval_predictions(toy_predictions())
    scores = by_key(result, "ToyG/gin/structure/L2")
    # Matched: g0 only (g1's metamer is invalid). Seed A: clean 2/2, matched 1; metamer right,
    # unchanged; near right, unchanged; far wrong; transfer (1-0)/(1-0) = 1; IC (1+0)/2 = 1/2.
    # Seed B: clean 1/2, matched 0; metamer wrong, unchanged; near wrong, unchanged; far right;
    # transfer (0-1)/(0-1): the gap is negative, undefined, so the mean is seed A's alone; IC 1/2.
    assert scores["clean_acc"]["mean"] == pytest.approx(0.75)
    assert scores["matched_clean_acc"]["mean"] == pytest.approx(0.5)
    assert scores["metamer_acc"]["mean"] == pytest.approx(0.5)
    assert scores["near_acc"]["mean"] == pytest.approx(0.5)
    assert scores["far_acc"]["mean"] == pytest.approx(0.5)
    assert scores["transfer"]["mean"] == pytest.approx(1.0) and scores["transfer"]["std"] == 0
    assert scores["invariance_consistency"]["mean"] == pytest.approx(0.5)
    # Two units: flagged, and no CI rather than a meaningless one.
    entry = next(s for s in result["sets"] if s["key"] == "ToyG/gin/structure/L2")
    assert entry["small_sample"] is True and entry["num_units"] == 2 and entry["num_matched_units"] == 1
    assert all(iv["ci_low"] is None and iv["ci_high"] is None for iv in scores.values())
    # Graph similarity is the mean over its nodes (NaN nodes left out): g0f -> 0.35.
    xs = [0.2, 0.95, 0.35]  # g0m, g0n, g0f
    rhos = []
    for t in (GRAPH_A, GRAPH_B):
        ys = [1 - jensenshannon(two_class([t[r]])[0], two_class([t[r[:2]]])[0], base=2) for r in ("g0m", "g0n", "g0f")]
        rhos.append(spearmanr(xs, ys).statistic)
    assert scores["ic_spearman"]["mean"] == pytest.approx(np.mean(rhos), abs=1e-6)


def test_golden_aggregate_floor_and_cross_architecture(toy):
    result = toy.eval_predictions(toy_predictions())
    agg = result["aggregate"]
    # Per seed, the mean over the two sets; then mean and std over seeds.
    assert agg["clean_acc"]["mean"] == pytest.approx((5 / 6 + 7 / 12) / 2, abs=1e-6)
    assert agg["invariance_consistency"]["mean"] == pytest.approx(0.625, abs=1e-6)
    assert agg["transfer"]["mean"] == pytest.approx((0.5 + 1.0) / 2, abs=1e-6)  # seed B: undefined in both sets
    assert result["clean_acc_by_dataset"] == {"Toy": pytest.approx(2 / 3, abs=1e-6), "ToyG": 0.75}
    assert result["accuracy_floor"]["Toy"] == {"reference_best": 0.7, "threshold": pytest.approx(0.63), "passed": True}
    assert result["accuracy_floor"]["ToyG"]["passed"] is False  # 0.75 < 0.9 * 0.9
    cells = {(c["dataset"], c["reference_model"]): c for c in result["cross_architecture"]}
    assert cells["Toy", "gcn"]["metamer_acc"] == 0.75 and cells["Toy", "gcn"]["transfer"] == 0.5
    assert cells["Toy", "gcn"]["matched_clean_acc"] == 0.75 and cells["Toy", "gcn"]["far_acc"] == 0.25
    assert cells["ToyG", "gin"]["kind"] == "structure" and cells["ToyG", "gin"]["evaluated_model"] == "toy"
    # Per kind and stage, and the matrix reference x kind x stage: here one set each.
    groups = {(g["kind"], g["layer"]): g for g in result["by_kind_stage"]}
    assert set(groups) == {("feature", 1), ("structure", 2)}
    assert groups["feature", 1]["scores"]["transfer"]["mean"] == 0.5 and groups["feature", 1]["sets"] == ["Toy/gcn/feature/L1"]
    matrix = {(m["reference_model"], m["kind"], m["layer"]): m for m in result["cross_architecture_by_stage"]}
    assert matrix["gin", "structure", 2]["scores"]["metamer_acc"]["mean"] == 0.5
    assert matrix["gcn", "feature", 1]["evaluated_model"] == "toy"


def test_every_metamer_is_scored_with_both_twins():
    frozen = node_set()
    frozen.variants = [v for v in frozen.variants if v.role != "far"]
    with pytest.raises(UserError, match=r"Toy/gcn/feature/L1: original o, seed 0: no far record"):
        Evaluator([frozen], reference_acc={"Toy": 0.7}, num_classes={"Toy": 2})
    frozen = node_set()
    frozen.variants.append(frozen.variants[1])
    with pytest.raises(UserError, match=r"variants\[3\] \(record n\)\.seed: a second near"):
        Evaluator([frozen], reference_acc={"Toy": 0.7}, num_classes={"Toy": 2})


def test_intervals_are_ordered_and_deterministic(toy):
    first = toy.eval_predictions(toy_predictions())
    second = toy.eval_predictions(toy_predictions())
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    for s in [*first["sets"], {"scores": first["aggregate"]}]:
        for name, iv in s["scores"].items():
            if iv["ci_low"] is not None:
                assert iv["ci_low"] <= iv["ci_high"], name
    ic = first["aggregate"]["invariance_consistency"]
    assert ic["ci_low"] <= ic["mean"] <= ic["ci_high"]


def test_a_perfect_invariant_model_on_a_tiny_set_is_flagged_not_given_a_zero_width_ci():
    frozen = node_set()
    ev = Evaluator([frozen], reference_acc={"Toy": 0.7}, num_classes={"Toy": 2}, num_bootstrap=200)
    truth = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [0.0, 5.0]])
    outputs = {r.id: torch.stack([truth, truth, truth]) for r in [*frozen.originals, *frozen.variants]}
    result = ev.eval_predictions({"type": "logits", "seeds": [0, 1, 2], "outputs": outputs})
    scores = result["sets"][0]["scores"]
    assert scores["clean_acc"] == {"mean": 1.0, "std": 0.0, "ci_low": None, "ci_high": None}  # 3 units
    assert result["sets"][0]["small_sample"] is True
    assert scores["metamer_acc"]["mean"] == 1.0 and scores["transfer"]["mean"] is None  # clean == far
    assert scores["invariance_consistency"]["mean"] == 0.5  # invariant everywhere: right on near, fooled by metamers
    assert scores["ic_correct"]["mean"] == 0.5 and scores["ic_order"]["mean"] == 0.5  # every pair tied
    assert scores["ic_spearman"]["mean"] is None  # constant output similarity


# -- the predictions schema ------------------------------------------------------------------------------------

def test_expected_input_schema_is_a_valid_json_schema(toy):
    from jsonschema import Draft202012Validator

    schema = toy.expected_input_schema
    Draft202012Validator.check_schema(schema)
    Draft202012Validator.check_schema(load_schema("predictions"))
    assert schema["properties"]["outputs"]["required"] == sorted(["o", "m", "n", "f", "g0", "g1", "g0m", "g1m",
                                                                   "g0n", "g1n", "g0f", "g1f"])
    described = {"type": "probs", "seeds": [0], "outputs": {"o": {"dtype": "float32", "shape": [1, 4, 2]}}}
    assert any("'m' is a required property" in p for p in schema_problems(described, schema, "predictions"))


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p["outputs"].pop("g1f"), r"predictions\.outputs: 'g1f' is a required property"),
    (lambda p: p["outputs"].__setitem__("zz", p["outputs"]["o"]), r"predictions\.outputs: .*'zz' was unexpected"),
    (lambda p: p["outputs"].__setitem__("o", torch.zeros(2, 3, 2)), r"predictions\.outputs\.o\.shape\[1\]: 4 was expected"),
    (lambda p: p["outputs"].__setitem__("o", torch.zeros(2, 4, 3)), r"predictions\.outputs\.o\.shape\[2\]: 2 was expected"),
    (lambda p: p["outputs"].__setitem__("g0", torch.zeros(2, 1, 2, dtype=torch.long)), r"outputs\.g0\.dtype: 'int64' is not one of"),
    (lambda p: p["outputs"].__setitem__("m", torch.zeros(2, 4)), r"outputs\.m\.shape: \[2, 4\] is too short"),
    (lambda p: p.__setitem__("type", "labels"), r"predictions\.type: 'labels' is not one of"),
    (lambda p: p.__setitem__("seeds", [0, 0]), r"predictions\.seeds: .*non-unique"),
    (lambda p: p.__setitem__("seeds", [0, 1, 2]), r"outputs\.f\.shape\[0\]: 2 model seeds, but seeds lists 3"),
    (lambda p: p["outputs"]["n"][0][1].__setitem__(0, float("nan")), r"outputs\.n: NaN or Inf"),
    (lambda p: p["outputs"]["n"][0].__setitem__(1, [0.7, 0.7]), r"outputs\.n: type is 'probs' but rows"),
    (lambda p: p.pop("outputs"), r"predictions: 'outputs' is a required property"),
])
def test_predictions_violations_name_the_field(toy, mutate, message):
    predictions = toy_predictions()
    mutate(predictions)
    with pytest.raises(UserError, match=message):
        toy.eval_predictions(predictions)


def test_predictions_from_a_safetensors_file(toy, tmp_path):
    predictions = toy_predictions()
    tensors = {k: torch.tensor(v, dtype=torch.float32) for k, v in predictions["outputs"].items()}
    path = tmp_path / "preds.safetensors"
    save_file(tensors, str(path), metadata={"type": "probs", "seeds": "[0, 1]", "model": "toy"})
    from_file = toy.eval_predictions(path)
    in_memory = toy.eval_predictions(predictions)
    # Nested lists become float32 tensors too, so the two inputs hold the same numbers.
    assert json.dumps(from_file, sort_keys=True) == json.dumps(in_memory, sort_keys=True)
    assert from_file["sets"][0]["scores"]["metamer_acc"]["mean"] == 0.75


# -- real models on Cora -------------------------------------------------------------------------------------

def cora_set(cora) -> FrozenSet:
    """A set built from Cora with simple, seeded perturbations standing in for generated metamers:
    the evaluator's arithmetic does not depend on how the variants were made."""
    data = cora.data
    n = data.num_nodes
    target = torch.zeros(n, dtype=torch.bool)
    target[cora.index("test")] = True
    gen = torch.Generator().manual_seed(0)

    def make(rid, role, x, edge_index, seed, valid=None):
        sim = torch.nn.functional.cosine_similarity(x, data.x, dim=1)
        return GraphRecord(id=rid, role=role, parent_id=None if role == "original" else "cora", dataset="Cora",
                           task="node", reference_model="" if role == "original" else "gcn",
                           kind="" if role == "original" else "feature", layer=0 if role == "original" else 1,
                           seed=seed, graph_index=0, x=x, edge_index=edge_index, y=data.y, target=target,
                           valid=torch.ones(n, dtype=torch.bool) if valid is None else valid, similarity=sim)

    variants = []
    for seed in (0, 1):
        shuffled = data.x[torch.randperm(n, generator=gen)]
        flips = (torch.rand(data.x.shape, generator=gen) < 0.002).float()
        near = (data.x + flips) % 2
        mixed = torch.where(torch.rand(n, 1, generator=gen) < 0.5, data.x, shuffled)
        valid = torch.rand(n, generator=gen) < 0.8
        variants += [make(f"m{seed}", "metamer", mixed, data.edge_index, seed, valid),
                     make(f"n{seed}", "near", near, data.edge_index, seed),
                     make(f"f{seed}", "far", shuffled, data.edge_index, seed)]
    return FrozenSet("Cora", "node", "gcn", "feature", 1, [make("cora", "original", data.x, data.edge_index, -1)],
                     variants)


@pytest.fixture(scope="module")
def cora_models(cora):
    from benchmark.models import default_config
    from benchmark.training import train_model

    config = default_config("gcn", cora.num_features, cora.num_classes)
    # GCN on Cora peaks on validation within ~15 epochs; 30 keep the test fast.
    return [train_model(cora, config, seed=s, epochs=30, patience=30) for s in (0, 1, 2)]


def test_eval_model_equals_eval_predictions_and_clean_acc_is_test_acc(cora, cora_models):
    frozen = cora_set(cora)
    ev = Evaluator([frozen], reference_acc={"Cora": 0.815}, num_classes={"Cora": cora.num_classes},
                   release_info=RELEASE, num_bootstrap=200)
    models = [m for m, _ in cora_models]
    result = ev.eval(models, seeds=[0, 1, 2])
    with torch.no_grad():
        outputs = {r.id: torch.stack([m.eval()(r.x, r.edge_index) for m in models])
                   for r in [*frozen.originals, *frozen.variants]}
    from_preds = ev.eval_predictions({"type": "logits", "seeds": [0, 1, 2], "model": "gcn", "outputs": outputs})
    assert json.dumps(result["sets"], sort_keys=True) == json.dumps(from_preds["sets"], sort_keys=True)
    test_accs = [metrics["test_acc"] for _, metrics in cora_models]
    assert result["clean_acc_by_dataset"]["Cora"] == pytest.approx(np.mean(test_accs), abs=1e-6)
    scores = result["sets"][0]["scores"]
    assert scores["clean_acc"]["std"] == pytest.approx(np.std(test_accs, ddof=1), abs=1e-6)
    # Near twins (0.2% of words flipped) barely move a GCN; shuffled features wreck it.
    assert scores["near_acc"]["mean"] > scores["metamer_acc"]["mean"] > scores["far_acc"]["mean"]
    assert scores["far_acc"]["mean"] < 0.4 < 0.7 < scores["near_acc"]["mean"]
    assert scores["ic_spearman"]["mean"] > 0.3  # more similar inputs -> more similar outputs
    assert result["evaluated_model"] == "gcn"
    assert result["accuracy_floor"]["Cora"]["passed"] is True
    # A mapping {dataset: models} is the same call.
    assert ev.eval({"Cora": models}, seeds=[0, 1, 2])["aggregate"] == result["aggregate"]


def test_eval_refuses_models_that_do_not_fit(cora, cora_models):
    from benchmark.models import build_model, default_config

    ev = Evaluator([cora_set(cora)], num_classes={"Cora": cora.num_classes}, num_bootstrap=10)
    wrong = build_model(default_config("gcn", cora.num_features, 3))
    with pytest.raises(UserError, match=r"\(in_channels, out_channels, task\)"):
        ev.eval([wrong])
    with pytest.raises(UserError, match="seeds"):
        ev.eval([m for m, _ in cora_models], seeds=[0, 1])
    with pytest.raises(UserError, match="no model for dataset"):
        ev.eval({"CiteSeer": [cora_models[0][0]]})
    with pytest.raises(UserError, match="not in this release"):
        Evaluator([cora_set(cora)], datasets=["PubMed"])


def test_sgc_seeds_share_their_propagation_bit_for_bit(cora):
    from benchmark.evaluate.inference import node_logits, shared_prefix
    from benchmark.models import build_model, default_config

    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(build_model(default_config("sgc", cora.num_features, cora.num_classes)).eval())
    assert shared_prefix(models) == 1
    gcn = build_model(default_config("gcn", cora.num_features, cora.num_classes)).eval()
    assert shared_prefix(models + [gcn]) == 0 and shared_prefix([gcn]) == 0
    with torch.inference_mode():
        shared = node_logits(models, 1, cora.data.x, cora.data.edge_index)
        alone = [m(cora.data.x, cora.data.edge_index) for m in models]
    assert all(torch.equal(a, b) for a, b in zip(shared, alone))
    assert not torch.equal(shared[0], shared[1])


def test_evaluate_modules_import_one_job_each_and_never_submission_intake():
    """The evaluator package's floors: units and results import no sibling, the predictions contract
    only units, the Evaluator the three it assembles; no module of evaluate/ or release/ imports
    submission intake (benchmark.submissions), the scoring of a folder (benchmark.scoring) or the
    leaderboard, and no module of leaderboard/ imports intake or scoring."""
    import ast

    root = Path(__file__).resolve().parents[1] / "benchmark"
    floors = {"units": set(), "results": set(), "inference": set(), "contract": {"units"},
              "evaluator": {"units", "contract", "inference"}, "reverse": set(),
              "__init__": {"contract", "evaluator", "results"}}
    forbidden = ("benchmark.submissions", "benchmark.scoring", "benchmark.leaderboard")

    def imports(path: Path) -> set[str]:
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                out.add(node.module)
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
        return {n for n in out if n.startswith("benchmark")}

    assert {p.stem for p in (root / "evaluate").glob("*.py")} == set(floors)
    for name, allowed in floors.items():
        found = imports(root / "evaluate" / f"{name}.py")
        siblings = {n.split(".")[2] for n in found if n.startswith("benchmark.evaluate.")}
        assert siblings <= allowed, f"benchmark.evaluate.{name} imports {sorted(siblings - allowed)}"
    for path in [*(root / "evaluate").glob("*.py"), *(root / "release").glob("*.py")]:
        bad = sorted(n for n in imports(path) if n.startswith(forbidden))
        assert not bad, f"{path.relative_to(root.parent)} imports {bad}"
    # The leaderboard reads cards (benchmark.submission_card), never submission intake.
    for path in (root / "leaderboard").glob("*.py"):
        bad = sorted(n for n in imports(path) if n.startswith(("benchmark.submissions", "benchmark.scoring")))
        assert not bad, f"{path.relative_to(root.parent)} imports {bad}"
