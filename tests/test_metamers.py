"""Metamer engine on real Cora / MUTAG: loss reduction, invariants, validity, determinism, errors."""
from __future__ import annotations

import json

import pytest
import torch

from benchmark.errors import UserError
from benchmark.metamers import (
    MetamerOptions,
    generate_metamers,
    make_frozen_set,
    near_twin_edges,
    near_twin_features,
    node_validity,
    null_threshold,
    pearson_rows,
    seed_summary,
)
from benchmark.metamers.feature import BinaryFeatures
from benchmark.metamers.structure import original_pairs, segment_topk_mask
from benchmark.metrics.distances import (
    degree_distance,
    edge_jaccard,
    feature_cosine,
    feature_jaccard,
    frequency_weighted_distance,
    wl_graph_similarity,
    wl_node_similarity,
)


def _undirected_count(edge_index: torch.Tensor, n: int) -> int:
    return original_pairs(edge_index, n).size(0)


def _is_symmetric(edge_index: torch.Tensor, n: int) -> bool:
    fwd = set((edge_index[0] * n + edge_index[1]).tolist())
    bwd = set((edge_index[1] * n + edge_index[0]).tolist())
    return fwd == bwd


@pytest.fixture(scope="module")
def gcn(trained_gcn):
    return trained_gcn[0]


@pytest.fixture(scope="module")
def feature_run(cora, gcn):
    return generate_metamers(gcn, cora.data, "feature", [0], progress=False, max_iterations=30)[0]


def test_feature_metamer_cuts_loss_and_keeps_word_counts(cora, feature_run):
    r = feature_run
    assert r.start_loss > 0.1
    assert r.rel_loss < r.start_loss / 4, (r.start_loss, r.rel_loss)
    assert r.loss_curve[0] == pytest.approx(r.start_loss) and len(r.loss_curve) == r.iterations
    assert min(r.loss_curve) == pytest.approx(r.rel_loss)
    x = cora.data.x
    assert bool(((r.x == 0) | (r.x == 1)).all())
    assert torch.equal(r.x.sum(1), x.sum(1))  # every node keeps its number of words
    assert torch.equal(r.start_x.sum(1), x.sum(1))
    assert float(feature_cosine(x, r.x).mean()) < 0.5  # and the words themselves changed a lot


def test_pearson_term_raises_node_correlations_and_rel_loss_stays_frobenius(cora, gcn, feature_run):
    run = generate_metamers(gcn, cora.data, "feature", [0], progress=False, max_iterations=30, pearson_weight=1.0)[0]
    test = cora.index("test")
    with torch.no_grad():
        h = gcn.embed(cora.data.x, cora.data.edge_index)
        r_plain = pearson_rows(h, gcn.embed(feature_run.x, cora.data.edge_index))[test]
        r_term = pearson_rows(h, gcn.embed(run.x, cora.data.edge_index))[test]
        frobenius = float(((gcn.embed(run.x, cora.data.edge_index) - h) ** 2).sum() / (h**2).sum())
    # The low-correlation tail is what fails validity; the r term lifts it.
    assert float(r_term.quantile(0.1)) > float(r_plain.quantile(0.1))
    assert run.rel_loss == pytest.approx(frobenius, rel=1e-4)  # reported loss is L_rel, not the objective
    assert min(run.loss_curve) <= run.rel_loss + 1e-12 and run.loss_curve[0] == pytest.approx(feature_run.start_loss)


def test_ste_keeps_every_row_count_exactly():
    g = torch.Generator().manual_seed(3)
    k = torch.tensor([0, 1, 5, 40, 7, 64])
    feat = BinaryFeatures(torch.randn(6, 64, generator=g), k, topk_pool=4, refresh_every=3)
    opt = torch.optim.Adam(feat.parameters(), lr=0.5)
    target = torch.randn(6, 64, generator=g)
    for _ in range(7):  # stale candidate pools between refreshes must not break the counts
        x, _ = feat()
        assert torch.equal(x.detach().sum(1), k.float())
        ((x - target) ** 2).sum().backward()
        feat.logit_grad()
        assert feat.z.grad is not None and torch.isfinite(feat.z.grad).all()
        opt.step()
        opt.zero_grad()
    assert torch.equal(feat.hard().sum(1), k.float())


def test_segment_topk_keeps_counts():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(50, generator=g)
    segment = torch.tensor([0] * 20 + [1] * 5 + [2] * 25)
    counts = torch.tensor([7, 5, 0])
    mask, cut = segment_topk_mask(values, segment, counts, 3)
    assert [int(mask[segment == s].sum()) for s in range(3)] == [7, 5, 0]
    assert bool((values[mask & (segment == 0)] > cut[0]).all()) and bool((values[~mask & (segment == 0)] < cut[0]).all())
    single, _ = segment_topk_mask(values, torch.zeros(50, dtype=torch.long), torch.tensor([13]), 1)
    assert int(single.sum()) == 13 and torch.equal(single, values >= values.topk(13).values[-1])


def test_structure_metamer_keeps_edge_count_and_symmetry(cora, gcn):
    n = cora.data.num_nodes
    r = generate_metamers(gcn, cora.data, "structure", [0], progress=False, max_iterations=12, candidate_ratio=3.0)[0]
    m = _undirected_count(cora.data.edge_index, n)
    for ei in (r.edge_index, r.start_edge_index):
        assert _undirected_count(ei, n) == m
        assert ei.size(1) == 2 * m  # symmetric, no duplicates
        assert _is_symmetric(ei, n)
        assert not bool((ei[0] == ei[1]).any())  # no self loops
    assert torch.equal(r.x, cora.data.x)  # features fixed
    assert r.rel_loss < r.start_loss
    assert r.num_candidates == m + round(3.0 * m)


def test_weighted_structure_and_continuous_features_run(cora, gcn):
    r = generate_metamers(gcn, cora.data, "structure", [0], progress=False, max_iterations=4, edges="weighted")[0]
    assert r.edge_weight is not None and r.edge_weight.numel() == r.edge_index.size(1)
    assert bool(((r.edge_weight >= 0) & (r.edge_weight <= 1)).all())
    c = generate_metamers(gcn, cora.data, "feature", [0], progress=False, max_iterations=4, features="continuous")[0]
    assert bool((c.x >= 0).all() and (c.x <= 1).all())  # projected to the data's range
    assert c.rel_loss < c.start_loss


def test_determinism_and_batched_equals_alone(cora, gcn):
    kw = dict(progress=False, max_iterations=4)
    alone = generate_metamers(gcn, cora.data, "joint", [0, 1], batch_restarts=False, **kw)
    again = generate_metamers(gcn, cora.data, "joint", [0, 1], batch_restarts=False, **kw)
    batched = generate_metamers(gcn, cora.data, "joint", [0, 1], batch_restarts=True, **kw)
    for a, b, c in zip(alone, again, batched):
        assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index) and a.loss_curve == b.loss_curve
        # Bit for bit, loss curves included: a release's shards must not depend on the device's
        # batching default (BATCH_RESTARTS_BY_DEVICE).
        assert torch.equal(a.x, c.x) and torch.equal(a.edge_index, c.edge_index) and c.loss_curve == a.loss_curve
    assert not torch.equal(alone[0].x, alone[1].x)  # different seeds, different metamers


def test_graph_task_restarts_batched_equal_alone(mutag):
    from benchmark.models import default_config
    from benchmark.training import train_model

    model, _ = train_model(mutag, default_config("gin", mutag.num_features, mutag.num_classes, task="graph"), seed=0, epochs=5)
    graphs = [mutag.graphs[i] for i in mutag.index("test").tolist()[:4]]
    kw = dict(progress=False, max_iterations=6)
    alone = generate_metamers(model, graphs, "joint", [0, 1], batch_restarts=False, **kw)
    batched = generate_metamers(model, graphs, "joint", [0, 1], batch_restarts=True, **kw)
    assert len(alone) == len(batched) == 8
    for a, c in zip(alone, batched):
        assert torch.equal(a.x, c.x) and torch.equal(a.edge_index, c.edge_index) and c.loss_curve == a.loss_curve


def test_validity_semantics(cora, gcn, feature_run):
    data = cora.data
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
    b = torch.tensor([[2.0, 4.0, 6.0], [0.0, 0.0, 0.0], [2.0, 2.0, 2.0], [3.0, 2.0, 1.0]])
    assert pearson_rows(a, b).tolist() == pytest.approx([1.0, 1.0, 0.0, -1.0])
    same = node_validity(gcn, data.x, data.edge_index, data.x, data.edge_index)
    assert bool(same.mask.all()) and 0.0 < same.threshold < 1.0
    with torch.no_grad():
        h = gcn.embed(data.x, data.edge_index)
    assert same.threshold == pytest.approx(null_threshold(h))
    far = node_validity(gcn, data.x, data.edge_index, feature_run.start_x, data.edge_index, threshold=same.threshold)
    meta = node_validity(gcn, data.x, data.edge_index, feature_run.x, data.edge_index, threshold=same.threshold)
    assert torch.equal(meta.mask, meta.same_prediction & (meta.pearson > meta.threshold))
    # The metamer's activations track the original's; its starting point's do not.
    assert float(meta.pearson.mean()) > float(far.pearson.mean()) + 0.3
    assert meta.rate() > far.rate() and far.rate() < 0.05


def test_twins_keep_counts(cora):
    x, ei, n = cora.data.x, cora.data.edge_index, cora.data.num_nodes
    xn = near_twin_features(x, seed=0)
    assert torch.equal(xn.sum(1), x.sum(1))
    flipped = int((xn != x).sum()) // 2
    assert flipped == round(0.01 * int(x.sum()))
    en = near_twin_edges(ei, n, seed=0)
    m = _undirected_count(ei, n)
    assert _undirected_count(en, n) == m and _is_symmetric(en, n)
    assert edge_jaccard(ei, en, n) == pytest.approx((m - round(0.01 * m)) / (m + round(0.01 * m)))
    assert torch.equal(near_twin_features(x, seed=0), xn)  # deterministic


def test_distances(cora):
    x, ei, n = cora.data.x, cora.data.edge_index, cora.data.num_nodes
    assert edge_jaccard(ei, ei, n) == 1.0 and degree_distance(ei, ei, n) == 0.0
    assert wl_graph_similarity(ei, ei, n) == pytest.approx(1.0)
    assert bool((wl_node_similarity(ei, ei, n) > 0.9999).all())
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    shuffled = perm[ei]  # an isomorphic graph on relabelled nodes
    assert wl_graph_similarity(ei, shuffled, n) == pytest.approx(1.0)
    assert float(wl_node_similarity(ei, shuffled, n).mean()) < 0.6
    assert edge_jaccard(ei, shuffled, n) < 0.01 and degree_distance(ei, shuffled, n) == 0.0
    assert bool((feature_jaccard(x, x) == 1).all()) and float(frequency_weighted_distance(x, x).abs().max()) < 1e-6


def test_make_frozen_set_node_records(cora, gcn):
    fs = make_frozen_set(cora, gcn, "gcn", "feature", [0, 1], progress=False, max_iterations=5)
    assert fs.key == "Cora/gcn/feature/L1"
    assert [o.id for o in fs.originals] == ["Cora/gcn/feature/L1/original"]
    assert [v.id for v in fs.variants] == [f"Cora/gcn/feature/L1/s{s}/{r}" for s in (0, 1) for r in ("metamer", "near", "far")]
    test = cora.index("test")
    original = fs.originals[0]
    assert int(original.target.sum()) == test.numel() and bool(original.target[test].all())
    for v in fs.variants:
        assert v.parent_id == original.id and v.valid.dtype == torch.bool and v.similarity.shape == (cora.data.num_nodes,)
        assert not bool(v.valid[~original.target].any())  # validity only on target nodes
        json.dumps(v.stats, allow_nan=False)
    near = fs.by_role("near")[0]
    assert float(near.similarity.mean()) > 0.95
    summary = seed_summary(fs)
    for key in ("rel_loss", "validity_rate", "feature_cosine_mean", "edge_jaccard", "iterations", "wall_s"):
        assert summary["0"][key] is not None
    again = make_frozen_set(cora, gcn, "gcn", "feature", [0, 1], progress=False, max_iterations=5)
    assert all(torch.equal(a.x, b.x) and torch.equal(a.valid, b.valid) for a, b in zip(fs.variants, again.variants))


def test_graph_task_metamers_batched(mutag):
    from benchmark.models import default_config
    from benchmark.training import train_model

    model, _ = train_model(mutag, default_config("gin", mutag.num_features, mutag.num_classes, task="graph"), seed=0, epochs=15)
    fs = make_frozen_set(mutag, model, "gin", "joint", [0], progress=False, max_iterations=30)
    test = mutag.index("test").tolist()
    assert [o.graph_index for o in fs.originals] == test
    assert len(fs.variants) == 3 * len(test)
    for v in fs.by_role("metamer"):
        g = mutag.graphs[v.graph_index]
        assert v.id.endswith(f"/s0/metamer/g{v.graph_index}")
        assert v.valid.shape == (1,) and v.y.shape == (1,) and int(v.y) == int(g.y)
        assert torch.equal(v.x.sum(1), g.x.sum(1))  # one-hot atom types stay one-hot
        assert _undirected_count(v.edge_index, g.num_nodes) == _undirected_count(g.edge_index, g.num_nodes)
    losses = [(v.stats["start_loss"], v.stats["rel_loss"]) for v in fs.by_role("metamer")]
    assert sum(r for _, r in losses) < 0.5 * sum(s for s, _ in losses)


def test_option_and_argument_errors(cora, gcn):
    with pytest.raises(UserError, match="valid options"):
        MetamerOptions.from_kwargs(max_iters=3)
    with pytest.raises(UserError, match="valid kinds: continuous, feature, joint, structure"):
        generate_metamers(gcn, cora.data, "edges", [0])
    with pytest.raises(UserError, match="valid stages"):
        generate_metamers(gcn, cora.data, "feature", [0], layer=5)
    with pytest.raises(UserError, match="valid candidate_source options"):
        generate_metamers(gcn, cora.data, "structure", [0], candidate_source="everything")
    with pytest.raises(UserError, match="distinct"):
        generate_metamers(gcn, cora.data, "feature", [1, 1])


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "Cora", "--model", "gcnn", "--kind", "feature"], "valid models:"),
    (["--dataset", "Coraa", "--model", "gcn", "--kind", "feature"], "valid datasets:"),
    (["--dataset", "Cora", "--model", "gcn", "--kind", "edges"], "valid kinds: continuous, feature, joint, structure"),
    (["--dataset", "Cora", "--model", "gcn", "--kind", "feature", "--layer", "7"], "valid layers: 1..1"),
    (["--dataset", "Cora", "--model", "gcn", "--kind", "feature", "--options", '{"bogus": 1}'], "valid options"),
])
def test_cli_errors(argv, message, capsys, cora):
    from benchmark.cli import main

    assert main(["generate", *argv, "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_cli_generate_writes_records_and_stats(tmp_path, cora, gcn, capsys):
    from benchmark.checkpoints import save_checkpoint
    from benchmark.cli import main
    from benchmark.files import read_json
    from benchmark.release.shards import read_records

    ckpt = save_checkpoint(gcn, tmp_path / "ckpt", {"dataset": "Cora", "seed": 0})
    out = tmp_path / "out"
    argv = ["generate", "--dataset", "Cora", "--model", "gcn", "--kind", "feature", "--seeds", "0", "--checkpoint",
            str(ckpt), "--max-iterations", "3", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    stats = read_json(out / "stats.json")
    for key in ("rel_loss", "validity_rate", "feature_cosine_mean", "edge_jaccard", "iterations", "wall_s"):
        assert stats["per_seed"]["0"][key] is not None
    records = read_records(out / "records.parquet")
    assert [r.role for r in records] == ["original", "metamer", "near", "far"]
    assert torch.equal(records[1].x.sum(1), cora.data.x.sum(1))
    assert main(["generate", "--dataset", "Cora", "--model", "sage", "--kind", "feature", "--checkpoint", str(ckpt),
                 "--no-progress"]) == 2
    assert "holds a 'gcn' model" in capsys.readouterr().err


def test_best_iterate_keeps_only_the_rows_of_problems_that_improved():
    from benchmark.metamers.engine import _BestIterate

    best = _BestIterate.empty(2, torch.device("cpu"))
    owner = torch.tensor([0, 0, 1])  # node -> problem
    first = torch.tensor([[1.0], [2.0], [3.0]])
    improved = torch.tensor([True, False])  # problem 1's loss was not finite at step 0
    best.keep(improved, 0, torch.tensor([0.5, float("nan")]), torch.tensor([0.4, float("nan")]))
    best.keep_rows(best.features, {"x": first}, improved[owner])
    assert torch.equal(best.features["x"], first)  # the first call stores every row
    assert best.features["x"] is not first  # ... as a copy
    improved = torch.tensor([False, True])
    best.keep(improved, 3, torch.tensor([0.9, 0.2]), torch.tensor([0.8, 0.1]))
    best.keep_rows(best.features, {"x": torch.tensor([[7.0], [8.0], [9.0]])}, improved[owner])
    assert best.features["x"].view(-1).tolist() == [1.0, 2.0, 9.0]
    assert best.objective.tolist() == [0.5, pytest.approx(0.2)] and best.rel.tolist() == [pytest.approx(0.4), pytest.approx(0.1)]
    assert best.iteration.tolist() == [0, 3] and best.since.tolist() == [0, 0]


@pytest.mark.parametrize("kind, options", [
    ("feature", {"features": "continuous", "lr": 1.0, "max_iterations": 4}),  # Cora: 1.9, 36.6, 13.5, 7.2
    ("structure", {"edge_lr": 50.0, "lr_final": 1.0, "max_iterations": 3}),  # Cora: 0.159, 0.092, 0.116
])
def test_results_hold_the_best_iterate_not_the_last(cora, gcn, kind, options):
    # Steps far too large make the loss jump about, so the last iterate is not the best one.
    r = generate_metamers(gcn, cora.data, kind, [0], progress=False, tolerance=0.0, **options)[0]
    assert r.best_iteration < r.iterations - 1, r.loss_curve
    assert r.rel_loss == r.loss_curve[r.best_iteration] == min(r.loss_curve)
    with torch.no_grad():
        h, h2 = gcn.embed(cora.data.x, cora.data.edge_index), gcn.embed(r.x, r.edge_index)
    assert float(((h2 - h) ** 2).sum() / (h**2).sum()) == pytest.approx(r.rel_loss, rel=1e-4)
