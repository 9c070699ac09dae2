"""Score primitives: JS distance, weighted Spearman, bootstrap weights, intervals."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import spearmanr

from benchmark.metrics.scores import (
    js_distance,
    seed_draws,
    stable_seed,
    summarize,
    unit_weights,
    weighted_ranks,
    weighted_spearman,
)


def test_js_distance_matches_scipy_and_bounds():
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(50, 5, generator=gen), -1)
    q = torch.softmax(torch.randn(50, 5, generator=gen), -1)
    q[0] = p[0]
    q[1] = torch.tensor([1.0, 0, 0, 0, 0])
    p[1] = torch.tensor([0.0, 1, 0, 0, 0])  # disjoint supports: the maximum, 1
    ours = js_distance(p, q)
    ref = np.array([jensenshannon(a, b, base=2) for a, b in zip(p.numpy(), q.numpy())])
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)
    assert ours[0] == 0 and ours[1] == pytest.approx(1.0)


def test_spearman_with_unit_weights_is_scipy_with_ties():
    x = torch.tensor([0.1, 0.5, 0.5, 0.2, 0.9, 0.9, 0.9, 0.3])
    y = torch.tensor([1.0, 2.0, 2.0, 0.5, 3.0, 2.5, 3.0, 1.0])
    rho = weighted_spearman(x.double(), y.double(), torch.ones(1, 8, dtype=torch.float64))
    assert rho.item() == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_weighted_spearman_equals_spearman_of_the_expanded_sample():
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 5, (30,), generator=gen).double()  # many ties
    y = torch.randn(30, generator=gen).double()
    w = torch.randint(0, 4, (3, 30), generator=gen).double()
    rho = weighted_spearman(x, y, w)
    for b in range(3):
        reps = w[b].long()
        ref = spearmanr(x.repeat_interleave(reps), y.repeat_interleave(reps)).statistic
        assert rho[b].item() == pytest.approx(ref, abs=1e-10)


def test_weighted_ranks_average_ties():
    ranks = weighted_ranks(torch.tensor([3.0, 1.0, 3.0, 2.0]).double(), torch.ones(1, 4, dtype=torch.float64))
    assert ranks[0].tolist() == [3.5, 1.0, 3.5, 2.0]


def test_constant_input_gives_undefined_spearman():
    x = torch.ones(5, dtype=torch.float64)
    y = torch.arange(5, dtype=torch.float64)
    assert torch.isnan(weighted_spearman(x, y, torch.ones(1, 5, dtype=torch.float64))).all()


def test_bootstrap_draws_are_seeded_and_complete():
    w = unit_weights(7, 100, seed=3)
    assert w.shape == (100, 7) and torch.all(w.sum(1) == 7)
    assert torch.equal(w, unit_weights(7, 100, seed=3))
    assert not torch.equal(w, unit_weights(7, 100, seed=4))
    d = seed_draws(3, 50, seed=0)
    assert d.shape == (50, 3) and int(d.min()) >= 0 and int(d.max()) <= 2
    assert stable_seed("a", 1) == stable_seed("a", 1) != stable_seed("a", 2)


def test_summarize_uses_sample_std_and_percentiles():
    interval = summarize(torch.tensor([0.5, 1.0]).double(), torch.linspace(0, 1, 1001).double())
    assert interval.mean == 0.75
    assert interval.std == pytest.approx(0.3535533906, abs=1e-9)
    assert interval.ci_low == pytest.approx(0.025) and interval.ci_high == pytest.approx(0.975)
    nan = summarize(torch.tensor([float("nan")] * 3).double(), torch.tensor([float("nan")]).double())
    assert nan.mean is None and nan.ci_low is None
    single = summarize(torch.tensor([0.2, float("nan")], dtype=torch.float64), torch.tensor([0.2, 0.2], dtype=torch.float64))
    assert single.mean == 0.2 and single.std == 0.0


def test_transfer_is_undefined_below_the_minimum_clean_far_gap():
    from benchmark.metrics.scores import TRANSFER_MIN_GAP, VARIANT_ROLES, SetOutcomes, score_matrix

    n = 20  # one variant per unit and role; clean right on 10 units
    clean = torch.tensor([[1.0] * 10 + [0.0] * 10], dtype=torch.float64)

    def outcomes(far_right: int) -> SetOutcomes:
        right = {"metamer": 8, "near": 10, "far": far_right}
        correct = {r: torch.tensor([[1.0] * right[r] + [0.0] * (n - right[r])], dtype=torch.float64) for r in VARIANT_ROLES}
        return SetOutcomes(n, clean, {r: torch.arange(n) for r in VARIANT_ROLES}, correct,
                           {r: torch.ones(1, n, dtype=torch.float64) for r in VARIANT_ROLES},
                           {r: torch.ones(n) for r in VARIANT_ROLES}, {r: torch.ones(1, n, dtype=torch.float64) for r in VARIANT_ROLES})

    ones = torch.ones(1, n, dtype=torch.float64)
    # clean 0.5, far 0.2: transfer (0.4 - 0.2) / (0.5 - 0.2) = 2/3
    assert float(score_matrix(outcomes(4), ones)["transfer"]) == pytest.approx(2 / 3)
    # clean 0.5, far 0.5 - 1/20 = 0.45: the gap equals the minimum, still defined
    assert 0.05 == pytest.approx(TRANSFER_MIN_GAP)
    assert torch.isfinite(score_matrix(outcomes(9), ones)["transfer"]).all()
    # far as accurate as clean (or more): no transfer, rather than a ratio of noise
    assert torch.isnan(score_matrix(outcomes(10), ones)["transfer"]).all()
    assert torch.isnan(score_matrix(outcomes(11), ones)["transfer"]).all()
