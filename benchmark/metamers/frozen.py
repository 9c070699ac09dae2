"""``make_frozen_set``: metamers, twins, validity and distances packed as release records."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.data import Data

from benchmark.errors import UserError, unknown_choice
from benchmark.graphs import GraphDataset
from benchmark.metamers.engine import MetamerResult, feature_frequency, frozen, generate_metamers
from benchmark.metamers.options import KINDS, V2_DEFAULTS, MetamerOptions
from benchmark.metamers.structure import pairs_to_edge_index, original_pairs
from benchmark.metamers.twins import far_twin, matched_far_twin, moved_words, near_twin
from benchmark.metamers.validity import (
    CRITERIA,
    StageCriterion,
    Validity,
    graph_stage_outputs,
    graph_validity,
    null_threshold,
    validity_from_activations,
)
from benchmark.metrics.distances import feature_cosine, feature_distances, structure_distances, wl_node_similarity
from benchmark.models import GraphModel
from benchmark.records import FrozenSet, GraphRecord

ROUND = 6  # significant digits kept for floats in stats (JSON size; values are not re-derived from them)


def _clean(value):
    """JSON-safe copy: NaN/Inf -> None, tensors -> lists, floats rounded to ``ROUND`` digits."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Tensor):
        return _clean(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return float(f"{value:.{ROUND}g}") if math.isfinite(value) else None
    return value


def input_similarity(kind: str, x: Tensor, edge_index: Tensor, x2: Tensor, edge_index2: Tensor) -> Tensor:
    """Per-node input similarity to the original, ``[N]``: feature cosine (feature metamers),
    WL-subtree similarity of the 2-hop neighbourhood (structure), their mean (joint)."""
    n = x.size(0)
    if kind == "feature":
        return feature_cosine(x, x2)
    wl = wl_node_similarity(edge_index, edge_index2, n)
    return wl if kind == "structure" else 0.5 * (wl + feature_cosine(x, x2))


def _distances(x: Tensor, edge_index: Tensor, x2: Tensor, edge_index2: Tensor) -> dict:
    if edge_index.shape == edge_index2.shape and torch.equal(edge_index, edge_index2):
        structure = {"edge_jaccard": 1.0, "wl_similarity": 1.0, "degree_distance": 0.0}  # same edges: skip the work
    else:
        structure = structure_distances(edge_index, edge_index2, x.size(0))
    return {**feature_distances(x, x2), **structure}


PROTOCOLS = ("v1", "v2")
# Controls verdict of a set (DESIGN 3): the criterion must pass near twins and fail far twins.
NEAR_MIN, FAR_MAX, VALIDITY_GOAL = 0.95, 0.05, 0.90


@torch.no_grad()
def _node_outputs(model: GraphModel, x: Tensor, edge_index: Tensor, layer: int) -> tuple[Tensor, Tensor]:
    return model.stage(x, edge_index, stage=layer), model(x, edge_index).argmax(-1)


def edge_homophily(edge_index: Tensor, y: Tensor) -> float:
    """Share of edges whose endpoints have the same label (node tasks), NaN without edges."""
    if edge_index.size(1) == 0:
        return float("nan")
    return float((y[edge_index[0]] == y[edge_index[1]]).float().mean())


def _edit_stats(kind: str, x: Tensor, edge_index: Tensor, x2: Tensor, edge_index2: Tensor, y: Tensor | None) -> dict:
    """What a variant changed, in the units its far twin is matched on (protocol v2)."""
    out: dict = {}
    if kind in ("feature", "continuous", "joint"):
        out["moved_words"] = int(moved_words(x, x2).sum())
        out["feature_l2"] = float((x2 - x).norm())
    if kind in ("structure", "joint"):
        from benchmark.metrics.distances import undirected_pairs

        n = x.size(0)
        a, b = undirected_pairs(edge_index, n), undirected_pairs(edge_index2, n)
        out["edges_removed"] = int((~torch.isin(a, b)).sum())
        out["edges_added"] = int((~torch.isin(b, a)).sum())
        if y is not None:
            out["edge_homophily"] = edge_homophily(edge_index2, y)
    return out


def _rel_loss(h: Tensor, h2: Tensor, nodes: Tensor | None = None) -> float:
    if nodes is not None:
        h, h2 = h[nodes], h2[nodes]
    return float(((h2 - h) ** 2).sum() / (h**2).sum().clamp(min=1e-12))


def _metamer_stats(result: MetamerResult) -> dict:
    curve = result.loss_curve
    return {
        "rel_loss": result.rel_loss, "start_loss": result.start_loss, "iterations": result.iterations,
        "best_iteration": result.best_iteration, "wall_s": result.wall_s, "step_ms": result.step_s * 1e3,
        "status": result.status, "message": result.message, "num_candidates": result.num_candidates,
        "loss_curve": curve, "options": result.options,
    }


def _check(dataset: GraphDataset, model: GraphModel, kind: str, seeds: list[int]) -> None:
    if kind not in KINDS:
        raise unknown_choice("kind", kind, KINDS)
    if model.config.task != dataset.task:
        raise UserError(f"the model is a {model.config.task}-task model but {dataset.name} is a {dataset.task}-task set")
    if model.config.in_channels != dataset.num_features or model.config.out_channels != dataset.num_classes:
        raise UserError(f"the model expects {model.config.in_channels} features / {model.config.out_channels} classes; "
                        f"{dataset.name} has {dataset.num_features} / {dataset.num_classes}")
    if not seeds:
        raise UserError("give at least one seed")


def make_frozen_set(dataset: GraphDataset, model: GraphModel, reference_model: str, kind: str, seeds: list[int],
                    layer: int | None = None, progress: bool = True, protocol: str = "v1",
                    validity: str = "centred", validity_quantile: float = 0.99, **options) -> FrozenSet:
    """Metamers of ``dataset`` for ``model`` plus near/far twins, as one :class:`FrozenSet`.

    Node tasks: one original record (target = the split's test nodes) and per seed a metamer,
    a near twin and a far twin, each with ``valid`` = the metamer's validity mask on target
    nodes (False elsewhere) and ``similarity`` = per-node input similarity to the original.
    Graph tasks: the same per *test* graph (``valid``/``y`` of shape ``[1]``).
    ``options`` are :class:`~benchmark.metamers.options.MetamerOptions` fields; record ids are
    deterministic (``"Cora/gcn/feature/L1/s0/metamer"``, graph tasks add ``"/g17"``).

    ``protocol="v1"`` reproduces release v1 (random-pair null on raw activations, far twin = the
    optimisation's start, near twins of 1%). ``protocol="v2"`` (release v2, DESIGN 3): validity
    by ``validity`` (a :data:`~benchmark.metamers.validity.CRITERIA` name, default ``centred``, its
    null at ``validity_quantile``: 0.99, docs/validity_v2.md),
    far twins matched to the metamer's input distance, near twins of one change on graph tasks,
    edit counts and homophily recorded per variant, ``layer`` may be the logits stage, and the
    engine options default to :data:`~benchmark.metamers.options.V2_DEFAULTS` (optimise to a plateau).
    """
    _check(dataset, model, kind, list(seeds))
    if protocol not in PROTOCOLS:
        raise unknown_choice("protocol", protocol, PROTOCOLS)
    if protocol == "v2":  # converge by default (options given still win)
        options = {**V2_DEFAULTS, **options}
    if not 0.5 <= float(validity_quantile) < 1:
        raise UserError(f"validity_quantile must lie in [0.5, 1), got {validity_quantile!r}")
    if validity not in CRITERIA:
        raise unknown_choice("validity criterion", validity, CRITERIA, "validity criteria")
    if protocol == "v1" and (kind == "continuous" or (layer or 0) > model.num_hidden_layers):
        raise UserError("continuous metamers and the logits stage need protocol='v2'")
    opts = MetamerOptions.from_kwargs(**options)
    if opts.edges == "weighted" and kind != "feature":
        raise UserError("frozen sets store binary edges; edges='weighted' is for generate_metamers only")
    layer = model.check_stage(layer)
    key = f"{dataset.name}/{reference_model}/{kind}/L{layer}"
    with frozen(model):
        if dataset.task == "node":
            originals, variants = _node_records(dataset, model, reference_model, kind, list(seeds), layer, progress,
                                                key, opts, options, protocol, (validity, validity_quantile))
        else:
            originals, variants = _graph_records(dataset, model, reference_model, kind, list(seeds), layer, progress,
                                                 key, opts, options, protocol, (validity, validity_quantile))
    return FrozenSet(dataset.name, dataset.task, reference_model, kind, layer, originals, variants)


def _node_records(dataset, model, reference_model, kind, seeds, layer, progress, key, opts, options, protocol, validity):
    data = dataset.data
    n = data.num_nodes
    x, edge_index = data.x.float(), pairs_to_edge_index(original_pairs(data.edge_index, n))
    if edge_index.size(1) != data.edge_index.size(1):
        edge_index = data.edge_index  # keep the original's own edge list where it is not plain symmetric
    target_idx = dataset.index("test")
    target = torch.zeros(n, dtype=torch.bool)
    target[target_idx] = True
    loss_nodes = target_idx if opts.nodes == "target" else None
    h, pred = _node_outputs(model, x, edge_index, layer)
    if protocol == "v1":
        threshold = null_threshold(h)

        def judge(h2, pred2):
            return validity_from_activations(h, h2, pred, pred2, threshold)
    else:
        criterion = StageCriterion.fit(validity[0], h, validity[1])
        threshold = criterion.threshold

        def judge(h2, pred2):
            return criterion.check(h, h2, pred, pred2, h_population=h)
    common = dict(dataset=dataset.name, task="node", reference_model=reference_model, kind=kind, layer=layer,
                  graph_index=0, y=data.y.clone())
    original = GraphRecord(id=f"{key}/original", role="original", parent_id=None, seed=-1, x=x, edge_index=edge_index,
                           target=target, valid=target.clone(), similarity=torch.ones(n), stats={}, **common)
    original.stats = _clean({"null_threshold": threshold, "num_target": int(target.sum()),
                             **({"validity_criterion": validity[0], "validity_quantile": validity[1], "protocol": protocol,
                                 "edge_homophily": edge_homophily(edge_index, data.y)} if protocol == "v2" else {})})
    results = generate_metamers(model, Data(x=x, edge_index=edge_index, num_nodes=n), kind, seeds, layer,
                                loss_nodes=loss_nodes, progress=progress, **options)
    variants = []
    for result in results:
        s = result.seed
        far = far_twin(result) if protocol == "v1" else matched_far_twin(
            x, edge_index, result.x, result.edge_index, kind, s, opts.candidate_source, opts.continuous_levels)
        twins = {"metamer": (result.x, result.edge_index), "near": near_twin(x, edge_index, kind, s), "far": far}
        checks: dict[str, Validity] = {}
        outs = {}
        for role, (x2, e2) in twins.items():
            h2, pred2 = _node_outputs(model, x2, e2, layer)
            checks[role] = judge(h2, pred2)
            outs[role] = h2
        valid = checks["metamer"].mask & target
        for role, (x2, e2) in twins.items():
            check = checks[role]
            stats = {"rel_loss_all": _rel_loss(h, outs[role]), "rel_loss_target": _rel_loss(h, outs[role], target_idx),
                     "validity_rate": check.rate(target_idx), "validity_rate_all": check.rate(),
                     "same_prediction_rate": float(check.same_prediction[target_idx].float().mean()),
                     "pearson_mean": float(check.pearson[target_idx].mean()), "null_threshold": threshold,
                     **_distances(x, edge_index, x2, e2)}
            if protocol == "v2":
                stats.update(_edit_stats(kind, x, edge_index, x2, e2, data.y))
            if role == "metamer":
                stats.update(_metamer_stats(result))
            variants.append(GraphRecord(
                id=f"{key}/s{s}/{role}", role=role, parent_id=original.id, seed=s, x=x2.float().contiguous(),
                edge_index=e2.long().contiguous(), target=target.clone(), valid=valid.clone(),
                similarity=input_similarity(kind, x, edge_index, x2, e2), stats=_clean(stats), **common))
    return [original], variants


def _graph_records(dataset, model, reference_model, kind, seeds, layer, progress, key, opts, options, protocol, validity):
    test = dataset.index("test").tolist()
    graphs = [dataset.graphs[i] for i in test]
    clean = [Data(x=g.x.float(), edge_index=pairs_to_edge_index(original_pairs(g.edge_index, g.num_nodes)),
                  y=g.y.view(1).long(), num_nodes=g.num_nodes) for g in graphs]
    freq = feature_frequency([g.x for g in dataset.graphs])
    # Null: pooled activations of random pairs of distinct graphs of the whole dataset.
    null_graphs = [Data(x=g.x.float(), edge_index=g.edge_index, num_nodes=g.num_nodes) for g in dataset.graphs]
    if protocol == "v1":
        base = graph_validity(model, clean, clean, layer, null_graphs=null_graphs)
        threshold = base.threshold

        def check_graphs(variants):
            return graph_validity(model, clean, variants, layer, threshold=threshold)
    else:
        # Population: every graph of the dataset at the matched stage (pooled hidden, or logits).
        population, _ = graph_stage_outputs(model, null_graphs, layer)
        h_test, pred_test = graph_stage_outputs(model, clean, layer)
        criterion = StageCriterion.fit(validity[0], population, validity[1])
        threshold = criterion.threshold
        # The centre is a statistic of the whole dataset, which the release does not hold: stored so
        # that `verify` can recompute validity from the release alone. Kept at full float32 precision.
        centre = [float(v) for v in criterion.centre.view(-1)] if criterion.centre is not None else None

        def check_graphs(variants):
            h2, pred2 = graph_stage_outputs(model, variants, layer)
            return criterion.check(h_test, h2, pred_test, pred2, h_population=population)
    originals = []
    for g, gi in zip(clean, test):
        n = g.num_nodes
        originals.append(GraphRecord(
            id=f"{key}/original/g{gi}", role="original", parent_id=None, dataset=dataset.name, task="graph",
            reference_model=reference_model, kind=kind, layer=layer, seed=-1, graph_index=gi, x=g.x,
            edge_index=g.edge_index, y=g.y, target=torch.ones(n, dtype=torch.bool), valid=torch.ones(1, dtype=torch.bool),
            similarity=torch.ones(n), stats=_clean({"null_threshold": threshold, **(
                {"validity_criterion": validity[0], "validity_quantile": validity[1], "protocol": protocol, "centre": centre}
                if protocol == "v2" else {})})))
    results = generate_metamers(model, clean, kind, seeds, layer, graph_indices=test, feature_freq=freq,
                                progress=progress, **options)
    by_seed: dict[int, list[MetamerResult]] = {}
    for r in results:
        by_seed.setdefault(r.seed, []).append(r)
    variants = []
    for s in seeds:
        group = by_seed[s]
        # v2: one change per graph (one atom type, one bond), whatever the graph's size.
        near = [near_twin(g.x, g.edge_index, kind, s * 100_003 + gi, count=1 if protocol == "v2" else None)
                for g, gi in zip(clean, test)]
        if protocol == "v1":
            fars = [(r.start_x, r.start_edge_index) for r in group]
        else:
            fars = [matched_far_twin(g.x, g.edge_index, r.x, r.edge_index, kind, s * 100_003 + gi, opts.candidate_source,
                                     opts.continuous_levels) for g, gi, r in zip(clean, test, group)]
        versions = {
            "metamer": [Data(x=r.x, edge_index=r.edge_index, num_nodes=g.num_nodes) for r, g in zip(group, clean)],
            "near": [Data(x=x2, edge_index=e2, num_nodes=g.num_nodes) for (x2, e2), g in zip(near, clean)],
            "far": [Data(x=fx, edge_index=fe, num_nodes=g.num_nodes) for (fx, fe), g in zip(fars, clean)],
        }
        checks = {role: check_graphs(g2s) for role, g2s in versions.items()}
        valid = checks["metamer"].mask
        # The test statistic under its own name: r for the Pearson criteria, an L2 distance or a ratio otherwise.
        statistic = {"distance": "distance", "identification": "identification_ratio"}.get(
            validity[0] if protocol == "v2" else "random_pair", "pearson")
        for j, (g, gi, r) in enumerate(zip(clean, test, group)):
            for role, g2s in versions.items():
                g2 = g2s[j]
                stats = {"valid": bool(checks[role].mask[j]), "same_prediction": bool(checks[role].same_prediction[j]),
                         statistic: float(checks[role].pearson[j]), "null_threshold": threshold,
                         **_distances(g.x, g.edge_index, g2.x, g2.edge_index)}
                if protocol == "v2":
                    stats.update(_edit_stats(kind, g.x, g.edge_index, g2.x, g2.edge_index, None))
                if role == "metamer":
                    stats.update(_metamer_stats(r))
                variants.append(GraphRecord(
                    id=f"{key}/s{s}/{role}/g{gi}", role=role, parent_id=f"{key}/original/g{gi}", dataset=dataset.name,
                    task="graph", reference_model=reference_model, kind=kind, layer=layer, seed=s, graph_index=gi,
                    x=g2.x.float().contiguous(), edge_index=g2.edge_index.long().contiguous(), y=g.y.clone(),
                    target=torch.ones(g.num_nodes, dtype=torch.bool), valid=valid[j : j + 1].clone(),
                    similarity=input_similarity(kind, g.x, g.edge_index, g2.x, g2.edge_index), stats=_clean(stats)))
    return originals, variants


def seed_summary(frozen_set: FrozenSet) -> dict[str, dict]:
    """Per-seed summary of a frozen set's metamers (what ``generate`` writes to ``stats.json``)."""
    out: dict[str, dict] = {}
    for seed in frozen_set.seeds:
        metas = [v for v in frozen_set.by_role("metamer") if v.seed == seed]
        fars = [v for v in frozen_set.by_role("far") if v.seed == seed]
        nears = [v for v in frozen_set.by_role("near") if v.seed == seed]

        def mean(records, name):
            vals = [r.stats.get(name) for r in records if r.stats.get(name) is not None]
            return float(sum(vals) / len(vals)) if vals else None

        if frozen_set.task == "node":
            m = metas[0].stats
            summary = {k: m.get(k) for k in ("rel_loss", "start_loss", "validity_rate", "validity_rate_all",
                                              "same_prediction_rate", "pearson_mean", "null_threshold",
                                              "feature_cosine_mean", "feature_hamming_mean", "feature_jaccard_mean",
                                              "feature_freq_distance_mean", "edge_jaccard", "wl_similarity",
                                              "degree_distance", "iterations", "best_iteration", "wall_s", "step_ms",
                                              "status", "message", "num_candidates")}
            summary["near_validity_rate"] = nears[0].stats.get("validity_rate")
            summary["far_validity_rate"] = fars[0].stats.get("validity_rate")
            summary["far_rel_loss"] = fars[0].stats.get("rel_loss_all")
            for name in ("moved_words", "feature_l2", "edges_removed", "edges_added", "edge_homophily"):
                if name in m:  # protocol v2: what the metamer changed and what its twins changed
                    summary[name] = m[name]
                    summary[f"far_{name}"] = fars[0].stats.get(name)
                    summary[f"near_{name}"] = nears[0].stats.get(name)
            if "moved_words" in m or "feature_l2" in m:
                summary["far_feature_cosine_mean"] = fars[0].stats.get("feature_cosine_mean")
        else:
            summary = {name: mean(metas, name) for name in ("rel_loss", "start_loss", "feature_cosine_mean",
                                                            "edge_jaccard", "wl_similarity", "degree_distance",
                                                            "iterations")}
            summary["validity_rate"] = float(sum(bool(r.valid[0]) for r in metas) / len(metas))
            summary["far_validity_rate"] = float(sum(bool(r.stats.get("valid")) for r in fars) / len(fars))
            summary["near_validity_rate"] = float(sum(bool(r.stats.get("valid")) for r in nears) / len(nears))
            summary["wall_s"] = float(sum(r.stats.get("wall_s") or 0 for r in metas))
            summary["num_graphs"] = len(metas)
            summary["failed"] = sum(r.stats.get("status") == "failed" for r in metas)
            if any("protocol" in o.stats for o in frozen_set.originals):  # v2: convergence and edit sizes
                summary.update({name: mean(metas, name) for name in ("best_iteration", "moved_words", "feature_l2",
                                                                     "edges_removed", "same_prediction")})
                summary["status"] = sorted({str(r.stats.get("status")) for r in metas})
                summary.update({f"far_{name}": mean(fars, name) for name in ("moved_words", "feature_l2",
                                                                            "edges_removed", "feature_cosine_mean")})
        out[str(seed)] = _clean(summary)
    return out
