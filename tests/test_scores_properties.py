"""Property tests (hypothesis) of the score primitives against naive implementations on random small inputs."""
from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from benchmark.metrics.scores import (
    MIN_UNITS,
    VARIANT_ROLES,
    SetOutcomes,
    bootstrap_scores,
    score_matrix,
    weighted_spearman,
)
from benchmark.schemas import load_schema
from benchmark.submission_card import MIN_SEEDS


def test_min_seeds_is_the_schema_rule():
    assert load_schema("submission")["properties"]["seeds"]["minItems"] == MIN_SEEDS


@st.composite
def outcomes(draw):
    """A random SetOutcomes: 1-3 seeds, 2-8 units, 0-10 matched observations (units may repeat or be absent)."""
    k = draw(st.integers(1, 3))
    n = draw(st.integers(2, 8))
    p = draw(st.integers(0, 10))
    bits = st.integers(0, 1)
    clean = torch.tensor(draw(st.lists(st.lists(bits, min_size=n, max_size=n), min_size=k, max_size=k)),
                         dtype=torch.float64)
    unit = torch.tensor(draw(st.lists(st.integers(0, n - 1), min_size=p, max_size=p)), dtype=torch.long)
    levels = st.sampled_from([0.0, 0.25, 0.5, 1.0, math.nan])  # ties and undefined input similarity
    correct, same, in_sim, out_sim = {}, {}, {}, {}
    for role in VARIANT_ROLES:
        correct[role] = torch.tensor(draw(st.lists(st.lists(bits, min_size=p, max_size=p), min_size=k, max_size=k)),
                                     dtype=torch.float64).reshape(k, p)
        same[role] = torch.tensor(draw(st.lists(st.lists(bits, min_size=p, max_size=p), min_size=k, max_size=k)),
                                  dtype=torch.float64).reshape(k, p)
        in_sim[role] = torch.tensor(draw(st.lists(levels, min_size=p, max_size=p)), dtype=torch.float64)
        out_sim[role] = torch.tensor(draw(st.lists(st.lists(levels.filter(math.isfinite), min_size=p, max_size=p),
                                                   min_size=k, max_size=k)), dtype=torch.float64).reshape(k, p)
    return SetOutcomes(n, clean, unit, correct, same, in_sim, out_sim)


def _naive(o: SetOutcomes, weights: list[int], seed: int) -> dict[str, float]:
    """METRICS.md's ratios written as loops over units, each unit counted ``weights[u]`` times."""
    def ratio(num, den):
        return num / den if den > 0 else math.nan

    obs = [(weights[int(o.unit[i])], i) for i in range(o.unit.numel())]
    clean_at = [o.clean[seed, int(o.unit[i])].item() for i in range(o.unit.numel())]
    den = sum(w for w, _ in obs)
    out = {"clean_acc": ratio(sum(w * o.clean[seed, u].item() for u, w in enumerate(weights)), sum(weights)),
           "matched_clean_acc": ratio(sum(w * clean_at[i] for w, i in obs), den)}
    keep = {}
    for role in VARIANT_ROLES:
        out[f"{role}_acc"] = ratio(sum(w * o.correct[role][seed, i].item() for w, i in obs), den)
        keep[role] = ratio(sum(w * o.same[role][seed, i].item() for w, i in obs), den)
    out["invariance_consistency"] = 0.5 * (keep["near"] + 1 - keep["metamer"])
    right = sum(w * clean_at[i] for w, i in obs)
    out["ic_correct"] = ratio(sum(w * clean_at[i] * (o.same["near"][seed, i].item() + 1 - o.same["metamer"][seed, i].item())
                                  for w, i in obs), 2 * right)
    if den > 0 and out["matched_clean_acc"] - out["far_acc"] >= 0.05 - 1e-9:
        out["transfer"] = (out["metamer_acc"] - out["far_acc"]) / (out["matched_clean_acc"] - out["far_acc"])
    else:
        out["transfer"] = math.nan
    order_num = order_den = conc_num = conc_den = 0.0
    for w, i in obs:
        for a, b in (("near", "metamer"), ("near", "far"), ("metamer", "far")):
            sa, sb = o.out_sim[a][seed, i].item(), o.out_sim[b][seed, i].item()
            order_num += w * (1.0 if sa > sb else 0.5 if sa == sb else 0.0)
            order_den += w
            xa, xb = o.in_sim[a][i].item(), o.in_sim[b][i].item()
            if math.isfinite(xa) and math.isfinite(xb) and xa != xb:
                conc_num += w * (0.5 if sa == sb else 1.0 if (sa > sb) == (xa > xb) else 0.0)
                conc_den += w
    out["ic_order"] = ratio(order_num, order_den)
    out["ic_concordance"] = ratio(conc_num, conc_den)
    return out


@settings(max_examples=200, deadline=None)
@given(outcomes(), st.data())
def test_score_matrix_equals_the_naive_ratios_under_any_resample(o, data):
    weights = data.draw(st.lists(st.integers(0, 3), min_size=o.num_units, max_size=o.num_units))
    got = score_matrix(o, torch.tensor([weights], dtype=torch.float64))
    for seed in range(o.num_seeds):
        for name, want in _naive(o, weights, seed).items():
            value = got[name][0, seed].item()
            assert (math.isnan(value) and math.isnan(want)) or math.isclose(value, want, abs_tol=1e-12), name


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(-3, 3), st.integers(0, 3)), min_size=3, max_size=25))
def test_weighted_spearman_is_scipy_on_the_expanded_sample(rows):
    x, y, w = (torch.tensor(c, dtype=torch.float64) for c in zip(*rows))
    xs, ys = np.repeat(x.numpy(), w.long().numpy()), np.repeat(y.numpy(), w.long().numpy())
    got = weighted_spearman(x, y, w.unsqueeze(0))[0].item()
    if len(xs) < 2 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        assert math.isnan(got)
    else:
        assert math.isclose(got, spearmanr(xs, ys).statistic, abs_tol=1e-9)


@st.composite
def clean_outcomes(draw):
    """Clean correctness only: 1-3 model seeds, 30-60 units (enough for a CI), no matched observations."""
    k = draw(st.integers(1, 3))
    n = draw(st.integers(MIN_UNITS, 2 * MIN_UNITS))
    clean = torch.tensor(draw(st.lists(st.lists(st.integers(0, 1), min_size=n, max_size=n), min_size=k, max_size=k)),
                         dtype=torch.float64)
    empty = {role: torch.zeros(k, 0, dtype=torch.float64) for role in VARIANT_ROLES}
    return SetOutcomes(n, clean, torch.zeros(0, dtype=torch.long), empty, dict(empty),
                       {role: torch.zeros(0, dtype=torch.float64) for role in VARIANT_ROLES}, dict(empty))


@settings(max_examples=100, deadline=None)
@given(clean_outcomes(), st.integers(0, 2**31 - 1))
def test_bootstrap_ci_of_clean_accuracy_contains_its_estimate(o, seed):
    """Clean accuracy is a mean over units: each replicate (units and model seeds drawn with replacement)
    is a binomial-like mean around the estimate, so the 95% percentile CI holds it, for the set and the
    aggregate, and stays inside [0, 1]."""
    scored = bootstrap_scores([o], ["set"], num_boot=1000, seed=seed)
    for interval in (scored.per_set[0]["clean_acc"], scored.aggregate["clean_acc"]):
        assert interval.ci_low is not None, "30 or more units get a CI"
        assert 0.0 <= interval.ci_low <= interval.mean + 1e-12
        assert interval.mean - 1e-12 <= interval.ci_high <= 1.0
