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
        return SetOutcomes(n, clean, torch.arange(n), correct,
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


def _outcomes(clean, unit, correct=None, same=None, in_sim=None, out_sim=None):
    """A SetOutcomes for one model seed from plain lists (per role dicts; defaults: all 1)."""
    from benchmark.metrics.scores import VARIANT_ROLES, SetOutcomes

    p = len(unit)

    def per_role(values, per_seed=True):
        values = values or {}
        out = {}
        for r in VARIANT_ROLES:
            v = torch.tensor(values.get(r, [1.0] * p), dtype=torch.float64)
            out[r] = v.view(1, p) if per_seed else v
        return out

    return SetOutcomes(len(clean), torch.tensor([clean], dtype=torch.float64), torch.tensor(unit, dtype=torch.long),
                       per_role(correct), per_role(same), per_role(in_sim, per_seed=False), per_role(out_sim))


def test_transfer_compares_matched_units_only():
    """Clean accuracy in transfer's denominator is over the units the metamers are scored on
    (issue 12.1): units without a valid metamer do not lift or sink it; clean_acc keeps all units."""
    from benchmark.metrics.scores import score_matrix

    # 6 units; matched observations on units 0-3 only (unit 0 twice: two metamer seeds).
    # Clean right on units 0, 1, 2 and 4 (unit 4 has no observation).
    o = _outcomes([1, 1, 1, 0, 1, 0], [0, 0, 1, 2, 3],
                  correct={"metamer": [1, 1, 1, 0, 0], "near": [1, 1, 1, 1, 0], "far": [0, 0, 1, 0, 0]})
    got = {k: float(v) for k, v in score_matrix(o, torch.ones(1, 6, dtype=torch.float64)).items()}
    assert got["clean_acc"] == pytest.approx(4 / 6)
    assert got["matched_clean_acc"] == pytest.approx(4 / 5)  # units 0, 0, 1, 2 right; 3 wrong
    assert got["metamer_acc"] == pytest.approx(3 / 5) and got["far_acc"] == pytest.approx(1 / 5)
    assert got["transfer"] == pytest.approx((3 / 5 - 1 / 5) / (4 / 5 - 1 / 5))


def test_ic_correct_gains_nothing_from_flips_on_misclassified_units():
    from benchmark.metrics.scores import score_matrix

    ones = torch.ones(1, 4, dtype=torch.float64)
    # Units 0, 1 right on the original, 2, 3 wrong. Metamer flips on the wrong units only.
    flips_on_wrong = _outcomes([1, 1, 0, 0], [0, 1, 2, 3], same={"metamer": [1, 1, 0, 0]})
    got = score_matrix(flips_on_wrong, ones)
    assert float(got["invariance_consistency"]) == pytest.approx(0.75)  # v1 IC rewards those flips
    assert float(got["ic_correct"]) == pytest.approx(0.5)  # near kept, metamer kept on right units
    flips_on_right = _outcomes([1, 1, 0, 0], [0, 1, 2, 3], same={"metamer": [0, 1, 1, 1]})
    assert float(score_matrix(flips_on_right, ones)["ic_correct"]) == pytest.approx((2 + 1) / 4)
    never_right = _outcomes([0, 0, 0, 0], [0, 1, 2, 3])
    assert torch.isnan(score_matrix(never_right, ones)["ic_correct"]).all()


def test_ic_order_and_concordance_count_pairs_within_each_triple():
    from benchmark.metrics.scores import score_matrix

    ones = torch.ones(1, 2, dtype=torch.float64)
    # Unit 0: output similarity near .9 > metamer .5 > far .2: all three pairs in order.
    # Unit 1: near .4 < metamer .6, metamer .6 == far .6 (tie: 1/2), near .4 < far .6: 1/2 of 3.
    # Input similarity: unit 0 near .9, metamer .3, far .3 (metamer/far tie: not counted);
    # unit 1 near .8, metamer .1, far .2 (far above metamer, so metamer < far is the right order).
    o = _outcomes([1, 1], [0, 1], out_sim={"near": [.9, .4], "metamer": [.5, .6], "far": [.2, .6]},
                  in_sim={"near": [.9, .8], "metamer": [.3, .1], "far": [.3, .2]})
    got = score_matrix(o, ones)
    assert float(got["ic_order"]) == pytest.approx((3 + 0.5) / 6)
    # unit 0: near>metamer yes, near>far yes (2 pairs); unit 1: near>metamer no, near>far no,
    # metamer<far: output tie 1/2 (3 pairs) -> 2.5 / 5
    assert float(got["ic_concordance"]) == pytest.approx(2.5 / 5)
    # Weighted: unit 0 drawn twice, unit 1 never.
    w = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    assert float(score_matrix(o, w)["ic_order"]) == pytest.approx(1.0)


def test_spearman_of_a_constant_output_stays_undefined_with_many_observations():
    """Float32 squares of ranks past 2^12 are inexact: constant output similarity over thousands of
    observations used to pass the degeneracy check and give a correlation of rounding noise."""
    from benchmark.metrics.scores import unit_weights

    n = 6000
    gen = torch.Generator().manual_seed(0)
    in_sim = {r: torch.rand(n, generator=gen, dtype=torch.float64).tolist() for r in ("metamer", "near", "far")}
    o = _outcomes([1] * n, list(range(n)), in_sim=in_sim)  # every output similarity 1
    from benchmark.metrics.scores import score_matrix

    got = score_matrix(o, unit_weights(n, 20, 1))["ic_spearman"]
    assert torch.isnan(got).all()


def test_small_sets_are_flagged_with_no_ci():
    from benchmark.metrics.scores import MIN_UNITS, bootstrap_scores, small_sample

    small = _outcomes([1, 0] * 10, list(range(20)), same={"metamer": [0, 1] * 10})
    large = _outcomes([1, 0] * 20, list(range(20)), same={"metamer": [0, 1] * 10})  # 40 units, 20 matched
    enough = _outcomes([1, 0] * 20, list(range(40)), same={"metamer": [0, 1] * 20})
    assert MIN_UNITS == 30 and small_sample(small) and small_sample(large) and not small_sample(enough)
    scored = bootstrap_scores([small, large, enough], ["a", "b", "c"], num_boot=50)
    a, b, c = scored.per_set
    assert a["clean_acc"].mean == 0.5 and a["clean_acc"].ci_low is None and a["ic_correct"].ci_low is None
    assert b["clean_acc"].ci_low is not None and b["invariance_consistency"].ci_low is None  # 20 matched units
    assert all(c[name].ci_low is not None for name in ("clean_acc", "invariance_consistency", "ic_correct"))
    assert scored.aggregate["clean_acc"].ci_low is not None  # small sets still enter the aggregate


def test_sets_that_are_not_ranked_stay_out_of_the_aggregate():
    from benchmark.metrics.scores import bootstrap_scores

    good = _outcomes([1, 0] * 20, list(range(40)), same={"metamer": [0, 1] * 20})
    bad = _outcomes([0, 0] * 20, list(range(40)), same={"metamer": [1, 1] * 20})
    both = bootstrap_scores([good, bad], ["a", "b"], num_boot=50)
    only = bootstrap_scores([good, bad], ["a", "b"], num_boot=50, ranked=[True, False])
    alone = bootstrap_scores([good], ["a"], num_boot=50)
    assert only.aggregate["clean_acc"].mean == alone.aggregate["clean_acc"].mean == 0.5
    assert both.aggregate["clean_acc"].mean == 0.25  # averaged in, the failed set would halve it
    assert only.per_set[1]["clean_acc"].mean == 0.0  # still scored and reported
    with pytest.raises(ValueError, match="no ranked set to aggregate"):
        bootstrap_scores([good, bad], ["a", "b"], num_boot=50, ranked=[False, False])


def test_paired_difference_separates_only_outside_the_noise():
    from benchmark.metrics.scores import MDE_FACTOR, paired_difference

    base = torch.linspace(0.4, 0.6, 1000, dtype=torch.float64)
    same = paired_difference(0.5, base, 0.5, base + 1e-3 * torch.randn(1000, generator=torch.Generator().manual_seed(0),
                                                                       dtype=torch.float64))
    assert not same.separated and same.mde == pytest.approx(MDE_FACTOR * same.se)
    apart = paired_difference(0.55, base + 0.05, 0.5, base)
    assert apart.separated and apart.diff == pytest.approx(0.05) and apart.se == pytest.approx(0.0, abs=1e-12)
    assert paired_difference(0.5, torch.full((3,), float("nan")), 0.5, base[:3]) is None


def _intervals(node, path=""):
    """Every (path, interval) in a results document: dicts with mean, ci_low and ci_high."""
    if isinstance(node, dict):
        if {"mean", "ci_low", "ci_high"} <= set(node):
            yield path, node
        for key, value in node.items():
            yield from _intervals(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _intervals(value, f"{path}[{i}]")


def _results_files():
    from pathlib import Path

    return sorted((Path(__file__).resolve().parents[1] / "submissions" / "results").glob("*.json"))


@pytest.mark.parametrize("path", _results_files(), ids=lambda p: p.stem)
def test_every_reported_mean_lies_inside_its_ci(path):
    """Issue 12.6: a mean outside its own CI says the interval is of something else (v1's MLP
    ic_spearman 0.772 in [0.509, 0.709]: rounding noise scored as a correlation in the replicates)."""
    from benchmark.files import read_json

    doc = read_json(path)
    outside = [f"{where}: mean {iv['mean']} not in [{iv['ci_low']}, {iv['ci_high']}]"
               for where, iv in _intervals(doc)
               if iv["mean"] is not None and iv["ci_low"] is not None and not iv["ci_low"] <= iv["mean"] <= iv["ci_high"]]
    assert not outside, "\n".join(outside)
    small = [s["key"] for s in doc["sets"] if s["num_units"] < 30 or s.get("num_matched_units", 0) < 30]
    assert all(next(s for s in doc["sets"] if s["key"] == k)["small_sample"] for k in small)
