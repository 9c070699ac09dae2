"""Scores of a model on one frozen set, with a paired two-level bootstrap (METRICS.md has the formulas).

The building block is :class:`SetOutcomes`: for one frozen set and ``K`` model seeds it holds, per
*unit* (a test node of a node task's graph, or a test graph of a graph task), whether the model
was right on the original, and per (variant, unit) *observation* whether it was right, whether
its prediction was unchanged from the original, the input similarity and the output similarity.
Every score is a ratio of sums over units, so a bootstrap resample of units is a weight vector
``w [B, n_units]`` and the scores of ``B`` resamples are a handful of matrix products.

Bootstrap (95% CI "over nodes and seeds"): each replicate draws the units with replacement
(the same draw for every variant of a unit, so the pairing original/metamer/twin is kept) and
the model seeds with replacement, and averages the per-seed scores of the drawn seeds. The
percentile interval of the replicates is the CI.
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

SCORE_NAMES = ("clean_acc", "metamer_acc", "near_acc", "far_acc", "transfer", "invariance_consistency",
               "ic_spearman")
VARIANT_ROLES = ("metamer", "near", "far")
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
    return (weighted * ranks).sum(1, dtype=torch.float64) - total * ((total + 1.0) / 2.0) ** 2


def _rank_correlation(x_weighted: Tensor, x_moment: Tensor, y_ranks: Tensor, weights: Tensor,
                      total: Tensor) -> Tensor:
    """Pearson correlation of average ranks; uses that average ranks of N items always have mean (N+1)/2."""
    cov = (x_weighted * y_ranks).sum(1, dtype=torch.float64) - total * ((total + 1.0) / 2.0) ** 2
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
    Per role (metamer, near, far), observations are (variant record, valid unit) pairs:
    ``unit [P_r]`` unit index, ``correct [K, P_r]``, ``same [K, P_r]`` (prediction unchanged
    from the original), ``in_sim [P_r]`` (input similarity, NaN if undefined) and
    ``out_sim [K, P_r]`` (1 - JS distance of the class distributions).
    """

    num_units: int
    clean: Tensor
    unit: dict[str, Tensor]
    correct: dict[str, Tensor]
    same: dict[str, Tensor]
    in_sim: dict[str, Tensor]
    out_sim: dict[str, Tensor]

    @property
    def num_seeds(self) -> int:
        return int(self.clean.size(0))

    def counts(self) -> dict[str, int]:
        return {role: int(self.unit[role].numel()) for role in VARIANT_ROLES}


def _per_unit(values: Tensor, unit: Tensor, num_units: int) -> Tensor:
    """Sum ``values [K, P]`` (or ``[P]``) over observations into ``[K, n]`` (or ``[n]``) by unit."""
    if values.dim() == 1:
        return torch.zeros(num_units, dtype=torch.float64).index_add_(0, unit, values.double())
    out = torch.zeros(values.size(0), num_units, dtype=torch.float64)
    return out.index_add_(1, unit, values.double())


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, float("nan")))


def score_matrix(outcomes: SetOutcomes, weights: Tensor) -> dict[str, Tensor]:
    """Every score for each resample and model seed: ``weights [B, n]`` -> ``{name: [B, K]}``.

    ``weights`` all ones gives the scores of the data itself.
    """
    w = weights.double()
    n = outcomes.num_units
    out: dict[str, Tensor] = {}
    out["clean_acc"] = _ratio(w @ outcomes.clean.T, w.sum(1, keepdim=True))
    rate: dict[str, Tensor] = {}
    keep: dict[str, Tensor] = {}
    for role in VARIANT_ROLES:
        unit = outcomes.unit[role]
        count = _per_unit(torch.ones(unit.numel(), dtype=torch.float64), unit, n)  # [n]
        den = (w @ count).unsqueeze(1)  # [B, 1]
        out[f"{role}_acc"] = _ratio(w @ _per_unit(outcomes.correct[role], unit, n).T, den)
        keep[role] = _ratio(w @ _per_unit(outcomes.same[role], unit, n).T, den)
        rate[role] = out[f"{role}_acc"]
    out["metamer_acc"] = rate["metamer"]
    denominator = out["clean_acc"] - rate["far"]
    out["transfer"] = torch.where(denominator >= TRANSFER_MIN_GAP - 1e-9,  # 1e-9: float slack at the edge
                                  (rate["metamer"] - rate["far"]) / denominator,
                                  torch.full_like(denominator, float("nan")))
    # IC: agreement on near twins (input "same") and disagreement on metamers (input "different").
    out["invariance_consistency"] = 0.5 * (keep["near"] + (1.0 - keep["metamer"]))
    out["ic_spearman"] = _spearman_matrix(outcomes, w)
    return {name: out[name] for name in SCORE_NAMES}


def _spearman_matrix(outcomes: SetOutcomes, w: Tensor) -> Tensor:
    """Spearman(input similarity, output similarity) over all variant observations: ``[B, K]``."""
    units, in_sim, out_sim = [], [], []
    for role in VARIANT_ROLES:
        units.append(outcomes.unit[role])
        in_sim.append(outcomes.in_sim[role])
        out_sim.append(outcomes.out_sim[role])
    unit = torch.cat(units)
    x = torch.cat(in_sim).double()
    y = torch.cat(out_sim, dim=1).double()
    finite = torch.isfinite(x)
    unit, x, y = unit[finite], x[finite], y[:, finite]
    result = torch.full((w.size(0), outcomes.num_seeds), float("nan"), dtype=torch.float64)
    if x.numel() < 3:
        return result
    x_groups = tie_groups(x)
    y_groups = [tie_groups(y[k]) for k in range(outcomes.num_seeds)]
    # Weights are small integers and ranks half-integers below 2^23 (total weight = P): float32
    # holds them exactly and halves the memory traffic; the sums accumulate in float64.
    dtype = torch.float32 if x.numel() < 1 << 22 else torch.float64
    rows = max(8, min(256, _BLOCK_ENTRIES // x.numel()))
    for start in range(0, w.size(0), rows):
        block = torch.index_select(w[start:start + rows], 1, unit).to(dtype)  # [b, P] observation weights
        total = block.sum(1, dtype=torch.float64)
        x_ranks = weighted_ranks(x, block, x_groups)
        x_weighted = block * x_ranks
        x_moment = _rank_moment(x_weighted, x_ranks, total)
        for k in range(outcomes.num_seeds):
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


def summarize(per_seed: Tensor, boot: Tensor, level: float = CI_LEVEL) -> Interval:
    """``per_seed [K]`` scores of the data, ``boot [B]`` replicates -> :class:`Interval`.

    Std is the sample std over seeds (ddof 1; 0 for a single seed). Seeds where the score is
    undefined (NaN) are left out; the CI is the percentile interval of the defined replicates.
    """
    values = per_seed[torch.isfinite(per_seed)].double().numpy()
    if values.size == 0:
        return Interval(None, None, None, None)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    reps = boot[torch.isfinite(boot)].double().numpy()
    if reps.size == 0:
        return Interval(mean, std, None, None)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha])
    return Interval(mean, std, float(low), float(high))


def check_bootstrap(num_boot: object) -> int:
    """``num_boot`` as an int in ``[1, MAX_BOOTSTRAP]``, else a :class:`UserError` saying the valid range."""
    if not isinstance(num_boot, int) or isinstance(num_boot, bool) or not 1 <= num_boot <= MAX_BOOTSTRAP:
        raise UserError(f"bootstrap replicates must be an integer from 1 to {MAX_BOOTSTRAP}, got {num_boot!r}")
    return num_boot


def bootstrap_scores(outcomes: Sequence[SetOutcomes], keys: Sequence[str], num_boot: int = DEFAULT_BOOTSTRAP,
                     seed: int = 0) -> tuple[list[dict[str, Interval]], dict[str, Interval], list[dict[str, Tensor]]]:
    """Per-set and aggregated intervals for every score.

    Each set draws its own unit weights (seeded by ``seed`` and its key, so adding a set does
    not change another's CI); the model-seed draws are shared by all sets so the aggregate (mean
    over sets) resamples seeds once per replicate. Returns ``(per_set, aggregate, per_seed)``,
    ``per_seed[i][name]`` being set ``i``'s ``[K]`` scores on the data itself.
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
        per_set.append({name: summarize(seeds_scores[name], boot[name]) for name in SCORE_NAMES})
    aggregate = {}
    for name in SCORE_NAMES:
        seeds_mean = _nanmean(torch.stack([s[name] for s in per_seed]), dim=0)  # [K] mean over sets
        boot_mean = _nanmean(torch.stack([b[name] for b in boots]), dim=0)  # [B]
        aggregate[name] = summarize(seeds_mean, boot_mean)
    return per_set, aggregate, per_seed


def finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
