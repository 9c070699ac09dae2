"""Scores of a model on one frozen set, with a paired two-level bootstrap (METRICS.md has the formulas).

The building block is :class:`SetOutcomes`: for one frozen set and ``K`` model seeds it holds, per
*unit* (a test node of a node task's graph, or a test graph of a graph task), whether the model
was right on the original, and per *matched observation* (a metamer seed and a unit where the
metamer, its near twin and its far twin are all valid) what the model did on each of the three
variants: whether it was right, whether its prediction was unchanged from the original, the input
similarity and the output similarity. Every role is scored on the same observations (unit
matching, issue 12.1): ``metamer_acc``, ``near_acc``, ``far_acc`` and ``matched_clean_acc`` are
averages over one multiset of units, so ``transfer`` compares like with like; ``clean_acc`` (all
units) is reported beside them. Every score is a ratio of sums over units, so a bootstrap
resample of units is a weight vector ``w [B, n_units]`` and the scores of ``B`` resamples are a
handful of matrix products.

Bootstrap (95% CI "over units and seeds"): each replicate draws the units with replacement
(the same draw for every variant of a unit, so the pairing original/metamer/twin is kept) and
the model seeds with replacement, and averages the per-seed scores of the drawn seeds. The
percentile interval of the replicates is the CI. A set with fewer than :data:`MIN_UNITS` units
(``clean_acc``) or matched units (every other score) gets no CI: ``ci_low``/``ci_high`` are
``None`` and the set is flagged ``small_sample`` by the evaluator. Unit draws depend only on the
bootstrap seed and the set key, so two models scored on one release share their draws and
differences of their replicates are a paired bootstrap (:func:`paired_difference`).

Contract: ``bootstrap_scores`` raises ``ValueError`` on an empty or inconsistent input (sets
scored with different seed counts); malformed tensors are a programming error of the caller
(``benchmark.evaluate`` builds them from a checked release).
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from benchmark.errors import UserError

SCORE_NAMES = ("clean_acc", "matched_clean_acc", "metamer_acc", "near_acc", "far_acc", "transfer",
               "invariance_consistency", "ic_correct", "ic_order", "ic_concordance", "ic_spearman")
# Scores over all units of a set; every other score is over its matched observations.
ALL_UNIT_SCORES = frozenset({"clean_acc"})
VARIANT_ROLES = ("metamer", "near", "far")
# A set with fewer units than this (matched units for the matched scores) gets no CI: a percentile
# bootstrap over a handful of units is too coarse to mean anything (10 units give zero-width CIs
# whenever the model is right on all of them) and the set is flagged instead (issue 12.6).
MIN_UNITS = 30
# ic_order: the order output similarity should follow in each matched triple, most similar first.
ORDER = ("near", "metamer", "far")
DEFAULT_BOOTSTRAP = 1000
# Replicates cost memory linearly ([replicates, units] weights per set): 10^5 already takes minutes
# and CIs stop changing in the third decimal long before (METRICS.md).
MAX_BOOTSTRAP = 100_000
CI_LEVEL = 0.95
# transfer divides by clean_acc - far_acc; where the far twins are (nearly) as accurate as the
# originals the ratio is noise (a 1-point gap turns a 1-point difference into +-1). Below this gap,
# in the data or in a bootstrap resample, transfer is undefined (NaN; resamples are dropped).
TRANSFER_MIN_GAP = 0.05
# Bootstrap replicates per block of the [B, P] rank matrices: blocks of ~2^19 entries stay in cache
# (measured 4.5x faster than 256-row blocks for P = 34k observations on one core).
_BLOCK_ENTRIES = 1 << 19


def js_distance(p: Tensor, q: Tensor) -> Tensor:
    """Jensen-Shannon distance (base 2, in [0, 1]) between rows of ``p [..., C]`` and ``q [..., C]``.

    The square root of the JS divergence, as ``scipy.spatial.distance.jensenshannon(base=2)``.
    """
    p = p.double()
    q = q.double()
    m = 0.5 * (p + q)

    def kl(a: Tensor) -> Tensor:
        # 0 * log 0 = 0; m > 0 wherever a > 0, so the ratio is finite where it counts.
        ratio = torch.where(a > 0, a / m.clamp_min(1e-300), torch.ones_like(a))
        return (a * torch.log2(ratio)).sum(-1)

    return (0.5 * kl(p) + 0.5 * kl(q)).clamp(0.0, 1.0).sqrt()


def tie_groups(values: Tensor) -> tuple[Tensor, int]:
    """Tie-group index of each item of ``values [P]`` in increasing order of value, and the group count."""
    unique, item_group = torch.unique(values, sorted=True, return_inverse=True)
    return item_group, int(unique.numel())


def weighted_ranks(values: Tensor, weights: Tensor, groups: tuple[Tensor, int] | None = None) -> Tensor:
    """Average ranks of ``values [P]`` in the sample where item ``i`` appears ``weights[b, i]`` times.

    ``weights [B, P]`` -> ranks ``[B, P]``: for each replicate ``b``, the rank each item would get
    (ties averaged, 1-based) if the sample were expanded by its weights. Items of weight 0 get a
    rank too, but it never counts because their weight is 0. ``groups``: ``tie_groups(values)``
    when the caller reuses it.
    """
    item_group, num_groups = groups if groups is not None else tie_groups(values)
    group_weight = torch.zeros(weights.size(0), num_groups, dtype=weights.dtype)
    group_weight.index_add_(1, item_group, weights)
    # Items before the group, plus the mean of 1..w within it: cumsum - w + (w + 1) / 2.
    group_rank = torch.cumsum(group_weight, 1).sub_(group_weight, alpha=0.5).add_(0.5)
    return torch.index_select(group_rank, 1, item_group)


def weighted_spearman(x: Tensor, y: Tensor, weights: Tensor) -> Tensor:
    """Spearman's rho of ``x [P]`` and ``y [P]`` in each weighted resample ``weights [B, P]`` -> ``[B]``.

    With all weights 1 this is ``scipy.stats.spearmanr`` (average ranks for ties).
    """
    total = weights.sum(1, dtype=torch.float64)
    x_weighted = weights * weighted_ranks(x, weights)
    x_moment = _rank_moment(x_weighted, weighted_ranks(x, weights), total)
    return _rank_correlation(x_weighted, x_moment, weighted_ranks(y, weights), weights, total)


def _rank_moment(weighted: Tensor, ranks: Tensor, total: Tensor) -> Tensor:
    """``sum_i w_i r_i^2 - N ((N + 1) / 2)^2`` per row (``weighted = w * r``): N times the rank variance.

    Sums accumulate in float64 whatever the input dtype: the subtraction cancels most digits.
    """
    return (weighted.double() * ranks.double()).sum(1) - total * ((total + 1.0) / 2.0) ** 2


def _rank_correlation(x_weighted: Tensor, x_moment: Tensor, y_ranks: Tensor, weights: Tensor,
                      total: Tensor) -> Tensor:
    """Pearson correlation of average ranks; uses that average ranks of N items always have mean (N+1)/2."""
    cov = (x_weighted.double() * y_ranks.double()).sum(1) - total * ((total + 1.0) / 2.0) ** 2
    y_moment = _rank_moment(weights * y_ranks, y_ranks, total)
    # All-tied ranks have zero variance up to round-off: treat tiny relative moments as zero.
    scale = (total ** 3).clamp_min(1.0)
    degenerate = (x_moment <= 1e-9 * scale) | (y_moment <= 1e-9 * scale) | (total < 2)
    value = cov / (x_moment.clamp_min(1e-300) * y_moment.clamp_min(1e-300)).sqrt()
    return torch.where(degenerate, torch.full_like(cov, float("nan")), value)


@dataclass
class SetOutcomes:
    """What a model did on one frozen set, for ``K`` model seeds (all tensors float64 / long).

    Units: ``n`` scored units (node tasks: the test nodes of the original graph(s); graph tasks:
    the original test graphs). ``clean [K, n]``: 1 if the model is right on the original.
    Matched observations: ``P`` (metamer seed, unit) pairs where the metamer and both its twins
    are valid; ``unit [P]`` is each one's unit index, shared by the three roles. Per role
    (metamer, near, far): ``correct [K, P]``, ``same [K, P]`` (prediction unchanged from the
    original), ``in_sim [P]`` (input similarity, NaN if undefined) and ``out_sim [K, P]``
    (1 - JS distance of the class distributions).
    """

    num_units: int
    clean: Tensor
    unit: Tensor
    correct: dict[str, Tensor]
    same: dict[str, Tensor]
    in_sim: dict[str, Tensor]
    out_sim: dict[str, Tensor]

    @property
    def num_seeds(self) -> int:
        return int(self.clean.size(0))

    @property
    def num_observations(self) -> int:
        return int(self.unit.numel())

    @property
    def num_matched_units(self) -> int:
        """Distinct units with at least one matched observation."""
        return int(torch.unique(self.unit).numel())

    def counts(self) -> dict[str, int]:
        return {role: self.num_observations for role in VARIANT_ROLES}


def _per_unit(values: Tensor, unit: Tensor, num_units: int) -> Tensor:
    """Sum ``values [K, P]`` (or ``[P]``) over observations into ``[K, n]`` (or ``[n]``) by unit."""
    if values.dim() == 1:
        return torch.zeros(num_units, dtype=torch.float64).index_add_(0, unit, values.double())
    out = torch.zeros(values.size(0), num_units, dtype=torch.float64)
    return out.index_add_(1, unit, values.double())


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, float("nan")))


def _concordance(first: Tensor, second: Tensor, expected: Tensor) -> Tensor:
    """1 where ``sign(first - second)`` is ``expected`` (``+-1``), 1/2 on a tie, 0 otherwise; 0 where ``expected`` is 0."""
    diff = torch.sign(first - second)
    agree = torch.where(diff == 0, torch.full_like(diff, 0.5), (diff == expected).double())
    return torch.where(expected != 0, agree, torch.zeros_like(agree))


def pair_orders(outcomes: SetOutcomes) -> dict[str, tuple[Tensor, Tensor]]:
    """Per matched observation, the ordering scores' numerators ``[K, P]`` and pair counts ``[P]``.

    ``ic_order``: the three pairs of (near, metamer, far) should have output similarity in the
    order near > metamer > far; each pair scores 1 when it does, 1/2 on a tie, 0 otherwise.
    ``ic_concordance``: the same three pairs should be ordered by output similarity as they are
    by input similarity; pairs whose input similarities tie (or are undefined) do not count.
    """
    k, p = outcomes.num_seeds, outcomes.num_observations
    order_num = torch.zeros(k, p, dtype=torch.float64)
    conc_num = torch.zeros(k, p, dtype=torch.float64)
    conc_count = torch.zeros(p, dtype=torch.float64)
    for i, a in enumerate(ORDER):
        for b in ORDER[i + 1:]:
            sa, sb = outcomes.out_sim[a].double(), outcomes.out_sim[b].double()
            order_num += _concordance(sa, sb, torch.ones(p, dtype=torch.float64))
            xa, xb = outcomes.in_sim[a].double(), outcomes.in_sim[b].double()
            expected = torch.where(torch.isfinite(xa) & torch.isfinite(xb), torch.sign(xa - xb),
                                   torch.zeros(p, dtype=torch.float64))
            conc_num += _concordance(sa, sb, expected)
            conc_count += (expected != 0).double()
    return {"ic_order": (order_num, torch.full((p,), 3.0, dtype=torch.float64)),
            "ic_concordance": (conc_num, conc_count)}


def score_matrix(outcomes: SetOutcomes, weights: Tensor) -> dict[str, Tensor]:
    """Every score for each resample and model seed: ``weights [B, n]`` -> ``{name: [B, K]}``.

    ``weights`` all ones gives the scores of the data itself.
    """
    w = weights.double()
    n = outcomes.num_units
    unit = outcomes.unit
    out: dict[str, Tensor] = {}
    out["clean_acc"] = _ratio(w @ outcomes.clean.T, w.sum(1, keepdim=True))
    count = _per_unit(torch.ones(unit.numel(), dtype=torch.float64), unit, n)  # [n] observations per unit
    den = (w @ count).unsqueeze(1)  # [B, 1]
    clean_obs = outcomes.clean[:, unit]  # [K, P]: right on the original at each observation's unit
    out["matched_clean_acc"] = _ratio(w @ _per_unit(clean_obs, unit, n).T, den)
    keep: dict[str, Tensor] = {}
    for role in VARIANT_ROLES:
        out[f"{role}_acc"] = _ratio(w @ _per_unit(outcomes.correct[role], unit, n).T, den)
        keep[role] = _ratio(w @ _per_unit(outcomes.same[role], unit, n).T, den)
    denominator = out["matched_clean_acc"] - out["far_acc"]
    out["transfer"] = torch.where(denominator >= TRANSFER_MIN_GAP - 1e-9,  # 1e-9: float slack at the edge
                                  (out["metamer_acc"] - out["far_acc"]) / denominator,
                                  torch.full_like(denominator, float("nan")))
    # IC: agreement on near twins (input "same") and disagreement on metamers (input "different").
    out["invariance_consistency"] = 0.5 * (keep["near"] + (1.0 - keep["metamer"]))
    # The same, only where the model is right on the original: a flip from a wrong prediction
    # (often onto the right label, carried by R's evidence in the metamer) earns nothing.
    right = w @ _per_unit(clean_obs, unit, n).T  # [B, K]
    near_kept = w @ _per_unit(clean_obs * outcomes.same["near"], unit, n).T
    metamer_changed = w @ _per_unit(clean_obs * (1.0 - outcomes.same["metamer"]), unit, n).T
    out["ic_correct"] = _ratio(near_kept + metamer_changed, 2.0 * right)
    for name, (num, pairs) in pair_orders(outcomes).items():
        out[name] = _ratio(w @ _per_unit(num, unit, n).T, (w @ _per_unit(pairs, unit, n)).unsqueeze(1))
    out["ic_spearman"] = _spearman_matrix(outcomes, w)
    return {name: out[name] for name in SCORE_NAMES}


def _spearman_matrix(outcomes: SetOutcomes, w: Tensor) -> Tensor:
    """Spearman(input similarity, output similarity) over all variant observations: ``[B, K]``."""
    unit = outcomes.unit.repeat(len(VARIANT_ROLES))
    x = torch.cat([outcomes.in_sim[role] for role in VARIANT_ROLES]).double()
    y = torch.cat([outcomes.out_sim[role] for role in VARIANT_ROLES], dim=1).double()
    finite = torch.isfinite(x)
    unit, x, y = unit[finite], x[finite], y[:, finite]
    result = torch.full((w.size(0), outcomes.num_seeds), float("nan"), dtype=torch.float64)
    if x.numel() < 3:
        return result
    x_groups = tie_groups(x)
    y_groups = [tie_groups(y[k]) for k in range(outcomes.num_seeds)]
    if x_groups[1] < 2:
        return result  # constant input similarity: undefined for every resample
    # Weights are small integers and ranks half-integers below 2^23 (total weight = P): float32
    # holds them exactly and halves the memory traffic; products and sums are taken in float64
    # (a float32 rank squared is not exact past 2^12 and made constant outputs look non-constant).
    dtype = torch.float32 if x.numel() < 1 << 22 else torch.float64
    rows = max(8, min(256, _BLOCK_ENTRIES // x.numel()))
    for start in range(0, w.size(0), rows):
        block = torch.index_select(w[start:start + rows], 1, unit).to(dtype)  # [b, P] observation weights
        total = block.sum(1, dtype=torch.float64)
        x_ranks = weighted_ranks(x, block, x_groups)
        x_weighted = block * x_ranks
        x_moment = _rank_moment(x_weighted, x_ranks, total)
        for k in range(outcomes.num_seeds):
            if y_groups[k][1] < 2:
                continue  # constant output similarity (e.g. a model that ignores the changed input)
            y_ranks = weighted_ranks(y[k], block, y_groups[k])
            result[start:start + rows, k] = _rank_correlation(x_weighted, x_moment, y_ranks, block, total)
    return result


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from a string key, stable across processes (unlike ``hash``)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def unit_weights(num_units: int, num_boot: int, seed: int) -> Tensor:
    """Multinomial resampling weights ``[num_boot, num_units]`` (float64; each row sums to ``num_units``)."""
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, num_units, (num_boot, num_units), generator=generator)
    weights = torch.zeros(num_boot, num_units, dtype=torch.float64)
    return weights.scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float64))


def seed_draws(num_seeds: int, num_boot: int, seed: int) -> Tensor:
    """Model seeds drawn with replacement per replicate: ``[num_boot, num_seeds]`` indices."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_seeds, (num_boot, num_seeds), generator=generator)


def resample_seeds(per_seed: Tensor, draws: Tensor) -> Tensor:
    """``per_seed [B, K]`` scores, ``draws [B, K]`` seed indices -> ``[B]`` mean over the drawn seeds."""
    picked = torch.gather(per_seed, 1, draws)
    return _nanmean(picked, dim=1)


def _nanmean(values: Tensor, dim: int) -> Tensor:
    finite = torch.isfinite(values)
    total = torch.where(finite, values, torch.zeros_like(values)).sum(dim)
    count = finite.sum(dim)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


@dataclass
class Interval:
    """Mean and std over model seeds, and the bootstrap CI; ``None`` where undefined."""

    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None

    def to_dict(self, digits: int | None = None) -> dict[str, float | None]:
        def fmt(v: float | None) -> float | None:
            if v is None:
                return None
            return round(v, digits) if digits is not None else v

        return {"mean": fmt(self.mean), "std": fmt(self.std), "ci_low": fmt(self.ci_low),
                "ci_high": fmt(self.ci_high)}


def summarize(per_seed: Tensor, boot: Tensor, level: float = CI_LEVEL, with_ci: bool = True) -> Interval:
    """``per_seed [K]`` scores of the data, ``boot [B]`` replicates -> :class:`Interval`.

    Std is the sample std over seeds (ddof 1; 0 for a single seed). Seeds where the score is
    undefined (NaN) are left out; the CI is the percentile interval of the defined replicates
    (``None`` without ``with_ci``: a set too small for one, see :data:`MIN_UNITS`).
    """
    values = per_seed[torch.isfinite(per_seed)].double().numpy()
    if values.size == 0:
        return Interval(None, None, None, None)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    reps = boot[torch.isfinite(boot)].double().numpy()
    if reps.size == 0 or not with_ci:
        return Interval(mean, std, None, None)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha])
    return Interval(mean, std, float(low), float(high))


def check_bootstrap(num_boot: object) -> int:
    """``num_boot`` as an int in ``[1, MAX_BOOTSTRAP]``, else a :class:`UserError` saying the valid range."""
    if not isinstance(num_boot, int) or isinstance(num_boot, bool) or not 1 <= num_boot <= MAX_BOOTSTRAP:
        raise UserError(f"bootstrap replicates must be an integer from 1 to {MAX_BOOTSTRAP}, got {num_boot!r}")
    return num_boot


def small_sample(outcome: SetOutcomes) -> bool:
    """True when a set has fewer than :data:`MIN_UNITS` units or matched units (no CI is given)."""
    return outcome.num_units < MIN_UNITS or outcome.num_matched_units < MIN_UNITS


@dataclass
class BootstrapScores:
    """What :func:`bootstrap_scores` returns.

    ``per_set[i][name]``: set ``i``'s :class:`Interval`; ``per_seed[i][name]``: its ``[K]`` scores on
    the data; ``boots[i][name]``: its ``[B]`` replicates (seed-resampled means); ``aggregate`` and
    ``aggregate_boot``: the same for the mean over all sets.
    """

    per_set: list[dict[str, Interval]]
    per_seed: list[dict[str, Tensor]]
    boots: list[dict[str, Tensor]]
    aggregate: dict[str, Interval]
    aggregate_boot: dict[str, Tensor]

    def group(self, members: Sequence[int]) -> tuple[dict[str, Interval], dict[str, Tensor]]:
        """Mean over the sets ``members`` (indices): intervals and replicates, as the aggregate's."""
        return _mean_over_sets([self.per_seed[i] for i in members], [self.boots[i] for i in members])


def _mean_over_sets(per_seed: Sequence[dict[str, Tensor]], boots: Sequence[dict[str, Tensor]]
                    ) -> tuple[dict[str, Interval], dict[str, Tensor]]:
    """Per model seed the mean over the sets where a score is defined, then mean +- std over seeds; each
    replicate the mean of the sets' replicates. Only sets defined on the data for some seed enter the
    replicates, so the CI is of the same mixture of sets as the mean."""
    intervals, boot_means = {}, {}
    for name in SCORE_NAMES:
        defined = [i for i, s in enumerate(per_seed) if bool(torch.isfinite(s[name]).any())]
        if not defined:
            intervals[name] = Interval(None, None, None, None)
            boot_means[name] = torch.full_like(boots[0][name], float("nan"))
            continue
        seeds_mean = _nanmean(torch.stack([per_seed[i][name] for i in defined]), dim=0)  # [K] mean over sets
        boot_mean = _nanmean(torch.stack([boots[i][name] for i in defined]), dim=0)  # [B]
        intervals[name] = summarize(seeds_mean, boot_mean)
        boot_means[name] = boot_mean
    return intervals, boot_means


def bootstrap_scores(outcomes: Sequence[SetOutcomes], keys: Sequence[str], num_boot: int = DEFAULT_BOOTSTRAP,
                     seed: int = 0, ranked: Sequence[bool] | None = None) -> BootstrapScores:
    """Per-set and aggregated intervals for every score.

    Each set draws its own unit weights (seeded by ``seed`` and its key, so adding a set does
    not change another's CI, and two models scored on the same sets share their draws); the
    model-seed draws are shared by all sets so the aggregate (mean over sets) resamples seeds once
    per replicate. A set with fewer than :data:`MIN_UNITS` units (matched units for every score
    but ``clean_acc``) gets no CI of its own; its replicates still enter the aggregate.
    ``ranked`` (one flag per set; default all): only ranked sets enter the aggregate, since a set
    whose controls failed carries no signal to average in (DESIGN 5); every set keeps its own scores.
    """
    if not outcomes:
        raise ValueError("no frozen sets to score")
    num_seeds = outcomes[0].num_seeds
    if any(o.num_seeds != num_seeds for o in outcomes):
        raise ValueError("every set must be scored with the same model seeds")
    draws = seed_draws(num_seeds, num_boot, stable_seed(seed, "model-seeds"))
    per_set, per_seed, boots = [], [], []
    for outcome, key in zip(outcomes, keys):
        data = score_matrix(outcome, torch.ones(1, outcome.num_units, dtype=torch.float64))
        reps = score_matrix(outcome, unit_weights(outcome.num_units, num_boot, stable_seed(seed, key)))
        seeds_scores = {name: data[name][0] for name in SCORE_NAMES}
        boot = {name: resample_seeds(reps[name], draws) for name in SCORE_NAMES}
        per_seed.append(seeds_scores)
        boots.append(boot)
        enough = {name: (outcome.num_units if name in ALL_UNIT_SCORES else outcome.num_matched_units) >= MIN_UNITS
                  for name in SCORE_NAMES}
        per_set.append({name: summarize(seeds_scores[name], boot[name], with_ci=enough[name])
                        for name in SCORE_NAMES})
    if ranked is None:
        aggregate, aggregate_boot = _mean_over_sets(per_seed, boots)
    else:
        if len(ranked) != len(outcomes):
            raise ValueError(f"ranked has {len(ranked)} flags for {len(outcomes)} sets")
        chosen = [i for i, flag in enumerate(ranked) if flag]
        if not chosen:
            raise ValueError("no ranked set to aggregate: every set failed its controls")
        aggregate, aggregate_boot = _mean_over_sets([per_seed[i] for i in chosen], [boots[i] for i in chosen])
    return BootstrapScores(per_set, per_seed, boots, aggregate, aggregate_boot)


@dataclass
class PairedDifference:
    """Score of ``a`` minus score of ``b`` and its paired-bootstrap distribution summary."""

    diff: float
    ci_low: float
    ci_high: float
    se: float

    @property
    def separated(self) -> bool:
        """The 95% CI of the difference excludes 0."""
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def mde(self) -> float:
        """Minimum detectable effect at 5% two-sided and 80% power: ``(z_0.975 + z_0.8) * se``."""
        return MDE_FACTOR * self.se


# z_{0.975} + z_{0.80}: a true difference this many standard errors wide is found 80% of the time.
MDE_FACTOR = 1.959964 + 0.841621


def paired_difference(mean_a: float, boot_a: Tensor, mean_b: float, boot_b: Tensor,
                      level: float = CI_LEVEL) -> PairedDifference | None:
    """Paired bootstrap of ``a - b`` from replicates drawn with the same unit weights (same release,
    bootstrap seed and sets: see :func:`bootstrap_scores`); ``None`` when no replicate is defined for both."""
    both = torch.isfinite(boot_a) & torch.isfinite(boot_b)
    if not bool(both.any()) or not (math.isfinite(mean_a) and math.isfinite(mean_b)):
        return None
    d = (boot_a[both] - boot_b[both]).double().numpy()
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(d, [alpha, 1.0 - alpha])
    se = float(d.std(ddof=1)) if d.size > 1 else 0.0
    return PairedDifference(mean_a - mean_b, float(low), float(high), se)


def finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
