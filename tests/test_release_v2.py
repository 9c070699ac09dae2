"""Release v2 (issue 11) on real Cora / MUTAG: stages, continuous kind, edit budget, matched controls,
the centred validity criterion, named references with their own seeds, and a tiny v2 build end to end."""
from __future__ import annotations

import pytest
import torch

from benchmark.errors import UserError
from benchmark.metamers import generate_metamers, make_frozen_set
from benchmark.metamers.structure import original_pairs, sample_candidates
from benchmark.metamers.twins import matched_far_twin, moved_words, near_twin
from benchmark.metamers.validity import StageCriterion
from benchmark.metrics.distances import undirected_pairs
from benchmark.release.build import ReleaseConfig, stage_layers
from benchmark.release.card import read_card, set_verdict
from benchmark.release.loader import load_frozen_sets
from benchmark.release.manifest import read_manifest
from benchmark.release.verify import verify_release
from tiny_release import TINY_V2


@pytest.fixture(scope="module")
def gcn(trained_gcn):
    return trained_gcn[0].eval()


def _edits(edge_index, edge_index2, n):
    a, b = undirected_pairs(edge_index, n), undirected_pairs(edge_index2, n)
    return int((~torch.isin(a, b)).sum()), int((~torch.isin(b, a)).sum())


def test_the_logits_stage_is_matched_and_checked(cora, gcn):
    logits = gcn.logits_stage
    assert logits == gcn.num_hidden_layers + 1
    d = cora.data
    r = generate_metamers(gcn, d, "feature", [0], logits, progress=False, max_iterations=20)[0]
    assert r.layer == logits and r.rel_loss < r.start_loss / 2
    with torch.no_grad():
        assert torch.equal(gcn.stage(d.x, d.edge_index, stage=logits), gcn(d.x, d.edge_index))
    with pytest.raises(UserError, match=r"valid stages: 1\.\.1 \(hidden layers\) and 2 \(the logits\)"):
        gcn.check_stage(3)


def test_graph_logits_have_one_row_per_graph(mutag):
    from benchmark.models import default_config
    from benchmark.training import train_model

    model = train_model(mutag, default_config("gin", mutag.num_features, mutag.num_classes, task="graph"), seed=0,
                        epochs=5)[0].eval()
    graphs = [mutag.graphs[i] for i in mutag.index("test")[:4].tolist()]
    results = generate_metamers(model, graphs, "structure", [0], model.logits_stage, progress=False, max_iterations=5)
    assert len(results) == 4 and all(r.layer == model.logits_stage for r in results)


def test_continuous_kind_stays_in_range_on_the_stored_levels(cora, gcn):
    d = cora.data
    r = generate_metamers(gcn, d, "continuous", [0], 1, progress=False, max_iterations=10, continuous_levels=16)[0]
    values = torch.unique(r.x)
    assert values.numel() <= 16 and float(values.min()) >= 0.0 and float(values.max()) <= 1.0
    assert not bool(((r.x == 0) | (r.x == 1)).all())  # relaxed off the binary support


def test_the_edit_budget_bounds_removed_and_added_edges(cora, gcn):
    d = cora.data
    n = d.num_nodes
    m = original_pairs(d.edge_index, n).size(0)
    r = generate_metamers(gcn, d, "structure", [0], 1, progress=False, max_iterations=15, edge_budget=0.1,
                          candidate_source="mixed")[0]
    removed, added = _edits(d.edge_index, r.edge_index, n)
    assert removed == added and 0 < removed <= round(0.1 * m)
    with pytest.raises(UserError, match="edge_budget must lie in"):
        generate_metamers(gcn, d, "structure", [0], 1, progress=False, edge_budget=1.5)


def test_mixed_candidates_are_not_mostly_two_hop(cora):
    n = cora.data.num_nodes
    pairs = original_pairs(cora.data.edge_index, n)
    adj = torch.zeros(n, n, dtype=torch.bool)
    adj[pairs[:, 0], pairs[:, 1]] = adj[pairs[:, 1], pairs[:, 0]] = True
    two_hop = (adj.float() @ adj.float()) > 0

    def share(source):
        cand = sample_candidates(pairs, n, 1.0, source, False, torch.Generator().manual_seed(0))
        return float(two_hop[cand[:, 0], cand[:, 1]].float().mean())

    assert share("two_hop") > 0.95
    assert 0.4 < share("mixed") < 0.6


def test_matched_far_twins_change_as_much_as_their_metamer(cora, gcn):
    d = cora.data
    meta = generate_metamers(gcn, d, "joint", [0], 1, progress=False, max_iterations=5, edge_budget=0.2)[0]
    far_x, far_e = matched_far_twin(d.x, d.edge_index, meta.x, meta.edge_index, "joint", 0)
    assert torch.equal(moved_words(d.x, far_x), moved_words(d.x, meta.x))
    assert torch.equal(far_x.sum(1), d.x.sum(1))  # words moved, not added
    assert _edits(d.edge_index, far_e, d.num_nodes) == _edits(d.edge_index, meta.edge_index, d.num_nodes)
    cont = generate_metamers(gcn, d, "continuous", [0], 1, progress=False, max_iterations=5)[0]
    far_c, _ = matched_far_twin(d.x, d.edge_index, cont.x, cont.edge_index, "continuous", 0)
    want, got = (cont.x - d.x).norm(dim=1), (far_c - d.x).norm(dim=1)
    assert float((got - want).abs().max()) < 0.05 * float(want.max())


def test_graph_near_twins_make_exactly_one_change(mutag):
    g = mutag.graphs[0]
    x2, _ = near_twin(g.x, g.edge_index, "feature", 3, count=1)
    assert int(moved_words(g.x, x2).sum()) == 1
    _, e2 = near_twin(g.x, g.edge_index, "structure", 3, count=1)
    assert _edits(g.edge_index, e2, g.num_nodes) == (1, 1)


def test_the_centred_criterion_passes_near_twins_and_fails_random_graphs(cora, gcn):
    d, test = cora.data, cora.index("test")
    with torch.no_grad():
        for stage in (1, gcn.logits_stage):
            h, pred = gcn.stage(d.x, d.edge_index, stage=stage), gcn(d.x, d.edge_index).argmax(-1)
            crit = StageCriterion.fit("centred", h, 0.99)
            x2, e2 = near_twin(d.x, d.edge_index, "feature", 0)
            near = crit.check(h[test], gcn.stage(x2, e2, stage=stage)[test], pred[test],
                              gcn(x2, e2).argmax(-1)[test])
            xr = d.x[torch.randperm(d.num_nodes, generator=torch.Generator().manual_seed(0))]
            far = crit.check(h[test], gcn.stage(xr, d.edge_index, stage=stage)[test], pred[test],
                             gcn(xr, d.edge_index).argmax(-1)[test])
            assert near.rate() >= 0.95 and far.rate() <= 0.05, (stage, near.rate(), far.rate())
    with pytest.raises(UserError, match="valid validity criteria: centred, distance, identification, random_pair"):
        StageCriterion.fit("pearson", h)


def test_the_distance_criterion_passes_copies_and_fails_random_pairs():
    h = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    pred = torch.zeros(500, dtype=torch.long)
    crit = StageCriterion.fit("distance", h, 0.99)
    pairs = torch.cdist(h, h)[torch.triu_indices(500, 500, 1).unbind()]
    # the threshold is the 1st percentile of distinct pairs' distances (sampled: within 5% of it)
    assert abs(crit.threshold - float(torch.quantile(pairs, 0.01))) < 0.05 * crit.threshold
    near = crit.check(h, h + 1e-3, pred, pred)
    far = crit.check(h, h.roll(1, 0), pred, pred)
    assert near.rate() == 1.0 and far.rate() <= 0.03
    assert not bool(crit.check(h, h, pred, pred + 1).mask.any())  # a changed prediction is never valid
    assert torch.allclose(far.pearson, (h - h.roll(1, 0)).norm(dim=1))  # the statistic is the distance


def test_graph_metamers_can_match_the_readout(mutag):
    from benchmark.models import default_config
    from benchmark.training import train_model

    model = train_model(mutag, default_config("gin", mutag.num_features, mutag.num_classes, task="graph"), seed=0,
                        epochs=5)[0].eval()
    graphs = [mutag.graphs[i] for i in mutag.index("test")[:3].tolist()]
    results = generate_metamers(model, graphs, "feature", [0], 1, progress=False, max_iterations=30,
                                graph_match="readout", features="continuous")
    for g, r in zip(graphs, results):
        with torch.no_grad():
            pooled = [model.head.pool(model.embed(x, g.edge_index, layer=1), torch.zeros(g.num_nodes, dtype=torch.long))
                      for x in (g.x.float(), r.x)]
        # the reported loss is the readout's relative loss, and it fell from the starting point
        rel = float(((pooled[1] - pooled[0]) ** 2).sum() / (pooled[0] ** 2).sum())
        assert abs(rel - r.rel_loss) <= 1e-4 * max(r.rel_loss, 1e-6) + 1e-6, (rel, r.rel_loss)
        assert r.rel_loss < r.start_loss
    with pytest.raises(UserError, match="valid graph_match options: nodes, readout"):
        generate_metamers(model, graphs, "feature", [0], 1, progress=False, graph_match="pooled")


def test_set_verdict_lists_why_a_set_is_not_ranked():
    good = {"0": {"validity_rate": 0.93, "near_validity_rate": 0.99, "far_validity_rate": 0.0}}
    assert set_verdict(good) == {"controls": "pass", "ranked": True, "reason": ""}
    bad = {"0": {"validity_rate": 0.5, "near_validity_rate": 0.9, "far_validity_rate": 0.2}}
    verdict = set_verdict(bad)
    assert verdict["controls"] == "fail" and not verdict["ranked"]
    assert "near twins 0.9" in verdict["reason"] and "far twins 0.2" in verdict["reason"]
    assert "metamer validity 0.5" in verdict["reason"]


def test_stage_layers_name_early_late_and_logits():
    assert stage_layers(["early", "late", "logits"], 3) == [(1, "early"), (3, "late"), (4, "logits")]
    assert stage_layers(["early", "late", "logits"], 1) == [(1, "hidden"), (2, "logits")]


def test_a_v2_build_has_stages_references_and_verdicts(built_v2):
    manifest = read_manifest(built_v2)
    sets = manifest["sets"]
    # Cora gcn3r: 2 hidden layers -> early (L1), late (L2), logits (L3), for 2 kinds; MUTAG gin: 3 stages.
    cora = [s for s in sets if s["dataset"] == "Cora"]
    assert sorted((s["kind"], s["layer"], s["stage"]) for s in cora) == [
        ("continuous", 1, "early"), ("continuous", 2, "late"), ("continuous", 3, "logits"),
        ("structure", 1, "early"), ("structure", 2, "late"), ("structure", 3, "logits")]
    assert {s["reference_model"] for s in cora} == {"gcn3r-s1000"}
    assert all(s["reference"] == {"name": "gcn3r", "arch": "gcn", "seed": 1000} for s in cora)
    assert all(isinstance(s["ranked"], bool) for s in sets)
    assert manifest["generator"]["config"]["reference_seeds"] == [1000]
    assert manifest["generator"]["config"]["reverse"] == {"datasets": ["Cora"], "kinds": ["continuous"], "seeds": [0]}
    assert manifest["datasets"]["Cora"] == {"task": "node", "num_features": 1433, "num_classes": 7, "test_units": 1000,
                                            "split": "public"}
    assert manifest["datasets"]["MUTAG"]["test_units"] == 20
    card = read_card(built_v2)["metamer_bench"]
    assert all(row["controls"] in ("pass", "fail") and "stage" in row for row in card["sets"])
    assert all(ref["seed"] == 1000 for ref in card["reference_models"])
    report = verify_release(built_v2, progress=False)
    assert report.ok, report.problems
    (logits_set,) = load_frozen_sets(built_v2, dataset="Cora", kind="continuous", layer=3)
    meta = logits_set.by_role("metamer")[0]
    assert torch.unique(meta.x).numel() <= 16
    far = logits_set.by_role("far")[0]
    assert meta.stats["feature_l2"] > 0 and abs(far.stats["feature_l2"] - meta.stats["feature_l2"]) < 0.05 * meta.stats["feature_l2"]


def test_a_v2_release_opens_once_with_the_facts_written_at_build_time(built_v2):
    from benchmark.evaluate import Evaluator
    from benchmark.release import DatasetDims, Release

    release = Release.open(built_v2)
    assert release.dims == {"Cora": DatasetDims(1433, 7, "node"), "MUTAG": DatasetDims(7, 2, "graph")}
    assert sorted(release.reference_weights()["Cora"]) == ["checkpoints/Cora/gcn3r-s1000"]  # v2 declares seeds
    best, model = release.reference_best("Cora")
    assert model == "gcn3r-s1000" and 0.5 < best <= 1.0
    assert {s["stage"] for s in release.select(dataset="Cora")} == {"early", "late", "logits"}
    evaluator = Evaluator(release, datasets=["MUTAG"], num_bootstrap=10)
    assert evaluator.release is release and evaluator.release_info == release.identity
    assert evaluator.dims == {"MUTAG": release.dims["MUTAG"]}
    assert evaluator.reference_acc == {"MUTAG": release.reference_best("MUTAG")[0]}
    # The tiny build's MUTAG sets (6 steps) fail their controls: scored, never averaged into an aggregate.
    assert evaluator.ranked == [s["ranked"] for s in sorted(release.select(dataset="MUTAG"), key=lambda s: s["key"])]
    if not any(evaluator.ranked):
        probs = {rid: torch.full((1, r.num_nodes if r.task == "node" else 1, 2), 0.5)
                 for rid, r in evaluator.records.items()}
        with pytest.raises(UserError, match="none of the 3 sets scored is ranked"):
            evaluator.score_probabilities(probs, [0], "uniform")


def test_v2_config_errors_name_what_is_valid():
    with pytest.raises(UserError, match="need protocol: v2"):
        ReleaseConfig(**{**TINY_V2, "protocol": "v1"}).check()
    with pytest.raises(UserError, match="valid stages: early, late, logits"):
        ReleaseConfig(**{**TINY_V2, "stages": ["middle"]}).check()
    with pytest.raises(UserError, match="must be a mapping with an 'arch'"):
        ReleaseConfig(**{**TINY_V2, "references": {"deep": {"num_layers": 4}}}).check()
    with pytest.raises(UserError, match=r"reverse must be a mapping with the keys \['datasets', 'kinds', 'seeds'\] "
                                        r"and optionally \['metamer_options', 'stages'\]"):
        ReleaseConfig(**{**TINY_V2, "reverse": {"datasets": ["Cora"]}}).check()
    reverse = {"datasets": ["Cora"], "kinds": ["continuous"], "seeds": [0]}
    ReleaseConfig(**{**TINY_V2, "reverse": {**reverse, "metamer_options": {"max_iterations": 300}}}).check()
    with pytest.raises(UserError, match="unknown metamer option"):
        ReleaseConfig(**{**TINY_V2, "reverse": {**reverse, "metamer_options": {"iterations": 300}}}).check()
    with pytest.raises(UserError, match="unknown reverse stage 'middle'; valid"):
        ReleaseConfig(**{**TINY_V2, "reverse": {**reverse, "stages": ["middle"]}}).check()
    with pytest.raises(UserError, match="unknown reverse dataset 'Photo'; valid datasets of the release: Cora, MUTAG"):
        ReleaseConfig(**{**TINY_V2, "reverse": {"datasets": ["Photo"], "kinds": ["continuous"], "seeds": [0]}}).check()
    with pytest.raises(UserError, match=r"graph_tasks: unknown key\(s\) \['seeds'\]; valid: \['validity'"):
        ReleaseConfig(**{**TINY_V2, "graph_tasks": {"seeds": [1]}}).check()
    with pytest.raises(UserError, match="unknown graph_tasks.validity 'cosine'; valid validity criteria: centred, distance"):
        ReleaseConfig(**{**TINY_V2, "graph_tasks": {"validity": "cosine"}}).check()


def test_frozen_set_v2_records_edits_and_homophily(cora, gcn):
    fs = make_frozen_set(cora, gcn, "gcn", "structure", [0, 1], layer=1, progress=False, protocol="v2",
                         max_iterations=4, edge_budget=0.1)
    for role in ("metamer", "near", "far"):
        for record in fs.by_role(role):
            assert {"edges_removed", "edges_added", "edge_homophily"} <= set(record.stats)
    metas, fars = fs.by_role("metamer"), fs.by_role("far")
    assert [m.stats["edges_removed"] for m in metas] == [f.stats["edges_removed"] for f in fars]
    assert fs.originals[0].stats["validity_criterion"] == "centred"
    with pytest.raises(UserError, match="need protocol='v2'"):
        make_frozen_set(cora, gcn, "gcn", "continuous", [0], progress=False)
