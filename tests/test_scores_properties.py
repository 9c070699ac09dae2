"""Property tests (hypothesis) of the score primitives against naive implementations on random small inputs."""
from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from benchmark.metrics.scores import VARIANT_ROLES, SetOutcomes, score_matrix, weighted_spearman
from benchmark.schemas import load_schema
from benchmark.submissions import MIN_SEEDS


def test_min_seeds_is_the_schema_rule():
    assert load_schema("submission")["properties"]["seeds"]["minItems"] == MIN_SEEDS


@st.composite
def outcomes(draw):
    """A random SetOutcomes: 1-3 seeds, 2-8 units, 0-10 observations per role (units may repeat or be absent)."""
    k = draw(st.integers(1, 3))
    n = draw(st.integers(2, 8))
    bits = st.integers(0, 1)
    clean = torch.tensor(draw(st.lists(st.lists(bits, min_size=n, max_size=n), min_size=k, max_size=k)),
                         dtype=torch.float64)
    unit, correct, same, in_sim, out_sim = {}, {}, {}, {}, {}
    for role in VARIANT_ROLES:
        p = draw(st.integers(0, 10))
        unit[role] = torch.tensor(draw(st.lists(st.integers(0, n - 1), min_size=p, max_size=p)), dtype=torch.long)
        correct[role] = torch.tensor(draw(st.lists(st.lists(bits, min_size=p, max_size=p), min_size=k, max_size=k)),
                                     dtype=torch.float64).reshape(k, p)
        same[role] = torch.tensor(draw(st.lists(st.lists(bits, min_size=p, max_size=p), min_size=k, max_size=k)),
                                  dtype=torch.float64).reshape(k, p)
        in_sim[role] = torch.rand(p, generator=torch.Generator().manual_seed(p), dtype=torch.float64)
        out_sim[role] = torch.rand(k, p, generator=torch.Generator().manual_seed(p + 1), dtype=torch.float64)
    return SetOutcomes(n, clean, unit, correct, same, in_sim, out_sim)


def _naive(o: SetOutcomes, weights: list[int], seed: int) -> dict[str, float]:
    """METRICS.md's ratios written as loops over units, each unit counted ``weights[u]`` times."""
    def ratio(num, den):
        return num / den if den > 0 else math.nan

    out = {"clean_acc": ratio(sum(w * o.clean[seed, u].item() for u, w in enumerate(weights)), sum(weights))}
    keep = {}
    for role in VARIANT_ROLES:
        obs = list(range(o.unit[role].numel()))
        den = sum(weights[o.unit[role][i]] for i in obs)
        out[f"{role}_acc"] = ratio(sum(weights[o.unit[role][i]] * o.correct[role][seed, i].item() for i in obs), den)
        keep[role] = ratio(sum(weights[o.unit[role][i]] * o.same[role][seed, i].item() for i in obs), den)
    out["invariance_consistency"] = 0.5 * (keep["near"] + 1 - keep["metamer"])
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
