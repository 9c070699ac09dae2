"""The metamer optimiser: feature, structure and joint metamers of any layer of a zoo model.

A *problem* is one graph (a node task's graph, or one graph of a graph-classification set)
and one seed. Problems are solved together as a disjoint union (block-diagonal batch): each
problem's loss is its own relative activation loss

    L_p = sum_{v in S_p} ||h_l(G'_p)_v - h_l(G_p)_v||^2 / sum_{v in S_p} ||h_l(G_p)_v||^2

and the total is ``sum_p L_p``, so gradients, Adam's element-wise updates, the per-problem
best iterate and the per-problem stopping rule are those of the problem alone: a seed gives
the same result batched or on its own (bit for bit on the CPU, loss curves included, tested;
on CUDA up to the round-off of atomic scatters). Each
problem draws its random numbers from its own generator seeded by (seed, graph index).

Graph-classification sets always batch their graphs; restarts (seeds) are batched where that
measured faster (``BATCH_RESTARTS_BY_DEVICE``, from ``scripts/bench_batched_restarts.py``).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch_geometric.data import Data
from tqdm.auto import tqdm

from benchmark.errors import UserError, unknown_choice
from benchmark.metamers.feature import BinaryFeatures, ContinuousFeatures, sparse_input
from benchmark.metamers.options import KINDS, MetamerOptions
from benchmark.metamers.structure import (
    EdgeLogits,
    original_pairs,
    pairs_to_edge_index,
    sample_candidates,
)
from benchmark.models import GraphModel

_FREQ_FLOOR = 1e-4  # smallest per-feature frequency used for initial logits
# Default restart strategy per device, from scripts/bench_batched_restarts.py (8 restarts, Cora, GCN):
# on a quiet 2-core CPU the block-diagonal batch measured 0.83-0.94x the sequential throughput
# (its 8 x N x F optimiser state falls out of cache), so the CPU runs restarts one by one; under
# heavy load (load average 7-10) it measured 3.4x, so pass batch_restarts=True on a shared box.
# Results are identical either way (docs/metamer_engine.md). CUDA: not yet measured (no GPU in
# development); batched, the usual GPU choice.
BATCH_RESTARTS_BY_DEVICE = {"cpu": False, "cuda": True}


@dataclass
class MetamerResult:
    """One optimised metamer (one graph, one seed) and its starting point (the far twin).

    Shapes: ``x [N, F]``, ``edge_index [2, E']`` (symmetric), ``edge_weight [E']`` or None
    (weighted-structure mode only), ``start_x``/``start_edge_index`` likewise.
    ``loss_curve[t]`` is the relative loss of iterate ``t`` (``t = 0``: the start).
    """

    kind: str
    seed: int
    graph_index: int
    layer: int
    x: Tensor
    edge_index: Tensor
    edge_weight: Tensor | None
    start_x: Tensor
    start_edge_index: Tensor
    rel_loss: float
    start_loss: float
    best_iteration: int
    iterations: int
    loss_curve: list[float]
    wall_s: float
    status: str  # "converged" (reached tolerance), "ran" (hit max_iterations), "failed"
    message: str = ""
    num_candidates: int = 0
    step_s: float = float("nan")  # median wall time of one optimisation step (shared by the batch)
    options: dict = field(default_factory=dict)


@dataclass
class _Problem:
    data: Data
    seed: int
    graph_index: int
    loss_nodes: Tensor  # local node indices the loss runs over


def _generator(seed: int, graph_index: int) -> torch.Generator:
    # One stream per (seed, graph): results never depend on what else is in the batch.
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(graph_index)) % (2**63))


def is_binary(x: Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def feature_frequency(xs: list[Tensor]) -> Tensor:
    """Per-feature frequency of non-zeros over all rows of ``xs`` (each ``[n_i, F]``), ``[F]``."""
    total = sum((x != 0).sum(0).double() for x in xs)
    rows = sum(x.size(0) for x in xs)
    return (total / max(rows, 1)).float()


@contextlib.contextmanager
def frozen(model: GraphModel):
    """Eval mode and no parameter gradients for the duration; restores both afterwards."""
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


class _Union:
    """The disjoint union of several problems' graphs, with per-node problem ids."""

    def __init__(self, problems: list[_Problem], device: torch.device) -> None:
        sizes = [p.data.num_nodes for p in problems]
        self.sizes = sizes
        self.offsets = [0]
        for s in sizes[:-1]:
            self.offsets.append(self.offsets[-1] + s)
        self.num_nodes = sum(sizes)
        self.owner = torch.repeat_interleave(torch.arange(len(problems)), torch.tensor(sizes)).to(device)
        self.x = torch.cat([p.data.x for p in problems]).to(device)
        self.edge_index = torch.cat([p.data.edge_index + off for p, off in zip(problems, self.offsets)], 1).to(device)
        self.loss_nodes = torch.cat([p.loss_nodes + off for p, off in zip(problems, self.offsets)]).to(device)
        self.all_nodes = self.loss_nodes.numel() == self.num_nodes


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise unknown_choice("kind", kind, KINDS)


def _feature_param(problems: list[_Problem], union: _Union, opts: MetamerOptions, freq: Tensor,
                   device: torch.device) -> BinaryFeatures | ContinuousFeatures:
    binary = {"auto": is_binary(union.x), "binary": True, "continuous": False}[opts.features]
    if binary and not is_binary(union.x):
        raise UserError("features='binary' needs 0/1 features; this graph has other values (use 'continuous')")
    if binary:
        base = torch.log(freq.clamp(min=_FREQ_FLOOR)).cpu()
        blocks = []
        for p in problems:
            g = _generator(p.seed, p.graph_index)
            u = torch.rand(p.data.num_nodes, base.numel(), generator=g).clamp_(1e-10, 1 - 1e-10)
            gumbel = -torch.log(-torch.log(u))
            blocks.append((base + gumbel) * opts.init_scale)
        k = (union.x != 0).sum(1)
        return BinaryFeatures(torch.cat(blocks).to(device), k, opts.slope, opts.margin, opts.margin_weight,
                              opts.topk_pool, opts.refresh_every)
    x = union.x
    lo, hi = x.min(0).values, x.max(0).values
    mean, std = x.mean(0), x.std(0) if x.size(0) > 1 else torch.zeros_like(x[0])
    blocks = []
    for p in problems:
        g = _generator(p.seed, p.graph_index)
        noise = torch.randn(p.data.num_nodes, x.size(1), generator=g).to(device)
        blocks.append(mean + std * noise)
    return ContinuousFeatures(torch.cat(blocks), lo, hi).to(device)


def _edge_param(problems: list[_Problem], union: _Union, opts: MetamerOptions,
                device: torch.device) -> tuple[EdgeLogits, Tensor, list[int]]:
    """Candidate pairs of every problem (global node ids, ``[C, 2]``) and their logits."""
    cands, segs, counts, inits, sizes = [], [], [], [], []
    for i, (p, off) in enumerate(zip(problems, union.offsets)):
        # A stream of its own, so a joint run's edges match a structure run's for the same seed.
        g = torch.Generator().manual_seed(_generator(p.seed, p.graph_index).initial_seed() ^ 0x5151)
        pairs = original_pairs(p.data.edge_index, p.data.num_nodes)
        cand = sample_candidates(pairs, p.data.num_nodes, opts.candidate_ratio, opts.candidate_source,
                                 opts.include_original_edges, g)
        inits.append(torch.randn(cand.size(0), generator=g) * opts.init_scale)
        cands.append(cand + off)
        segs.append(torch.full((cand.size(0),), i, dtype=torch.long))
        counts.append(min(pairs.size(0), cand.size(0)))
        sizes.append(cand.size(0))
    param = EdgeLogits(torch.cat(inits), torch.cat(segs), torch.tensor(counts), opts.edges, opts.slope,
                       opts.edge_count_weight).to(device)
    return param, torch.cat(cands).to(device), sizes


def _cosine_lr(step: int, total: int, lr: float, final: float) -> float:
    lo = lr * final
    return lo + 0.5 * (lr - lo) * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def _solve(model: GraphModel, problems: list[_Problem], kind: str, layer: int, opts: MetamerOptions,
           freq: Tensor, progress: bool, desc: str) -> list[MetamerResult]:
    device = next(model.parameters()).device
    start_time = time.perf_counter()
    union = _Union(problems, device)
    graph_task = model.config.task == "graph"
    batch = union.owner if (graph_task or len(problems) > 1) else None
    num = len(problems)
    with torch.no_grad():
        ref = model.embed(union.x, union.edge_index, batch=batch, layer=layer)
        ref_loss = ref if union.all_nodes else ref[union.loss_nodes]
        loss_owner = union.owner if union.all_nodes else union.owner[union.loss_nodes]
        denom = torch.zeros(num, device=device).index_add_(0, loss_owner, (ref_loss**2).sum(1)).clamp(min=1e-12)
        ref_unit = None  # centred, unit-norm reference rows for the Pearson term
        if opts.pearson_weight > 0:
            centred = ref_loss - ref_loss.mean(1, keepdim=True)
            ref_unit = centred / centred.norm(dim=1, keepdim=True).clamp(min=1e-12)
            loss_counts = torch.bincount(loss_owner, minlength=num).clamp(min=1).to(ref.dtype)

    feat = _feature_param(problems, union, opts, freq, device) if kind in ("feature", "joint") else None
    edges, cand, cand_sizes = _edge_param(problems, union, opts, device) if kind in ("structure", "joint") else (None, None, [])
    if edges is not None:
        cand_index = torch.cat([cand.t(), cand.t().flip(0)], 1)  # both directions, fixed all run long
    groups = []
    if feat is not None:
        groups.append({"params": list(feat.parameters()), "lr": opts.lr, "base": opts.lr})
    if edges is not None:
        groups.append({"params": list(edges.parameters()), "lr": opts.edge_lr, "base": opts.edge_lr})
    adam_kw = {"fused": True} if device.type in ("cpu", "cuda") else {}
    optimizer = torch.optim.Adam(groups, **adam_kw)

    def current_inputs() -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        reg = torch.zeros((), device=device)
        x, ei, ew = union.x, union.edge_index, None
        if feat is not None:
            x, r = feat()
            reg = reg + r
        if edges is not None:
            w, r = edges()
            ei, ew = cand_index, torch.cat([w, w])
            reg = reg + r
        return x, ei, ew, reg

    # Best state per problem (compact: top-k columns for binary features, masks for edges).
    best = torch.full((num,), float("inf"), device=device)  # the objective; best_rel: L_rel there
    best_rel = best.clone()
    best_iter = torch.zeros(num, dtype=torch.long)
    active = torch.ones(num, dtype=torch.bool, device=device)
    iterations = torch.zeros(num, dtype=torch.long)
    since_best = torch.zeros(num, dtype=torch.long)
    curves: list[list[float]] = [[] for _ in range(num)]
    best_feat: dict[str, Tensor] = {}
    best_edges: Tensor | None = None
    start_feat: Tensor | None = None
    start_edges: Tensor | None = None
    node_owner_cpu = union.owner
    cand_owner = edges.segment if edges is not None else None
    status_msg = ["" for _ in range(num)]
    step_times: list[float] = []

    bar = tqdm(range(opts.max_iterations), desc=desc, disable=not progress, leave=False, mininterval=0.5)
    ctx = sparse_input(model) if feat is None or isinstance(feat, BinaryFeatures) else contextlib.nullcontext(None)
    with ctx as holder:
        if holder is not None and feat is None:
            holder.fixed = union.x
        for step in bar:
            t_step = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = _cosine_lr(step, opts.max_iterations, group["base"], opts.lr_final)
            x, ei, ew, reg = current_inputs()
            if holder is not None and feat is not None:
                holder.x, holder.idx, holder.keep = x, feat.idx, feat.keep
            h = model.embed(x, ei, ew, batch=batch, layer=layer)
            diff = h - ref if union.all_nodes else h[union.loss_nodes] - ref_loss
            per_problem = torch.zeros(num, device=device).index_add_(0, loss_owner, (diff * diff).sum(1)) / denom
            objective = per_problem
            if ref_unit is not None:
                h_loss = h if union.all_nodes else h[union.loss_nodes]
                centred = h_loss - h_loss.mean(1, keepdim=True)
                r = (centred * ref_unit).sum(1) / centred.norm(dim=1).clamp(min=1e-12)
                objective = objective + opts.pearson_weight * torch.zeros(num, device=device).index_add_(
                    0, loss_owner, 1 - r) / loss_counts
            total = objective.sum() + reg
            losses, rel = objective.detach(), per_problem.detach()
            if step == 0:  # the starting point: the far twin
                if feat is not None:
                    start_feat = feat.hard().cpu() if isinstance(feat, BinaryFeatures) else feat.x.detach().cpu().clone()
                if edges is not None:
                    start_edges = edges.hard().cpu()
            finite = torch.isfinite(losses)
            improved = active & finite & (losses < best)
            if bool(improved.any()):
                best = torch.where(improved, losses, best)
                best_rel = torch.where(improved, rel, best_rel)
                imp_cpu = improved.cpu()
                best_iter[imp_cpu] = step
                since_best[imp_cpu] = 0
                rows = improved[union.owner]
                if isinstance(feat, BinaryFeatures):
                    if not best_feat:
                        best_feat = {"idx": feat.idx.clone(), "keep": feat.keep.clone()}
                    else:
                        best_feat["idx"][rows] = feat.idx[rows]
                        best_feat["keep"][rows] = feat.keep[rows]
                elif feat is not None:
                    if not best_feat:
                        best_feat = {"x": x.detach().clone()}
                    else:
                        best_feat["x"][rows] = x.detach()[rows]
                if edges is not None:
                    current = edges.hard() if edges.mode == "weighted" else ew[: cand.size(0)].detach() > 0.5
                    if best_edges is None:
                        best_edges = current.clone()
                    else:
                        sel = improved[cand_owner]
                        best_edges[sel] = current[sel]
            since_best[(~improved).cpu() & active.cpu()] += 1
            act_cpu = active.cpu()
            iterations[act_cpu] = step + 1
            for i in torch.nonzero(act_cpu).view(-1).tolist():
                curves[i].append(float(rel[i]))
            done = (losses <= opts.tolerance) | ~finite
            if opts.patience:
                done |= (since_best >= opts.patience).to(device)
            for i in torch.nonzero((done & active).cpu()).view(-1).tolist():
                if not bool(finite[i]):
                    status_msg[i] = f"loss became non-finite at iteration {step}"
            active &= ~done
            if progress:
                bar.set_postfix(loss=f"{float(losses[act_cpu.to(device)].mean() if act_cpu.any() else best.mean()):.4f}",
                                best=f"{float(best.mean()):.4f}")
            if not bool(active.any()):
                break
            optimizer.zero_grad(set_to_none=True)
            if total.requires_grad:
                total.backward()
                if isinstance(feat, BinaryFeatures):
                    feat.logit_grad()
                optimizer.step()
            if isinstance(feat, ContinuousFeatures):
                feat.project()
            step_times.append(time.perf_counter() - t_step)
    bar.close()
    step_s = float(torch.tensor(step_times).median()) if step_times else float("nan")
    wall = time.perf_counter() - start_time

    # Assemble per-problem results from the best state.
    results = []
    if isinstance(feat, BinaryFeatures):
        x_best = torch.zeros_like(union.x).scatter_(1, best_feat["idx"], best_feat["keep"]).cpu()
    elif feat is not None:
        x_best = best_feat["x"].cpu()
    else:
        x_best = union.x.cpu()
    cand_cpu = cand.cpu() if cand is not None else None
    best_edges_cpu = best_edges.cpu() if best_edges is not None else None
    cand_start = 0
    for i, (p, off) in enumerate(zip(problems, union.offsets)):
        n = p.data.num_nodes
        x_i = x_best[off : off + n]
        sx_i = start_feat[off : off + n] if start_feat is not None else p.data.x.cpu()
        ew_i = None
        if cand_cpu is not None:
            c_i = cand_cpu[cand_start : cand_start + cand_sizes[i]] - off
            b_i = best_edges_cpu[cand_start : cand_start + cand_sizes[i]]
            s_i = start_edges[cand_start : cand_start + cand_sizes[i]]
            cand_start += cand_sizes[i]
            if edges.mode == "weighted":
                ei_i = pairs_to_edge_index(c_i)
                both = torch.cat([c_i, c_i.flip(1)])
                order = torch.argsort(both[:, 0] * n + both[:, 1])
                ew_i = torch.cat([b_i, b_i])[order].float()
                sei_i = pairs_to_edge_index(c_i[s_i > 0.5])
            else:
                ei_i = pairs_to_edge_index(c_i[b_i])
                sei_i = pairs_to_edge_index(c_i[s_i])
        else:
            ei_i = p.data.edge_index.cpu()
            sei_i = ei_i
        loss = float(best_rel[i])
        if not math.isfinite(float(best[i])):
            status, msg = "failed", status_msg[i] or "no finite loss was reached"
        elif float(best[i]) <= opts.tolerance:
            status, msg = "converged", ""
        elif curves[i] and loss >= curves[i][0] * 0.999:
            status, msg = "failed", f"the loss never fell below its starting value {curves[i][0]:.4g}"
        else:
            status, msg = "ran", ""
        if status_msg[i]:
            msg = status_msg[i]
        results.append(MetamerResult(
            kind=kind, seed=p.seed, graph_index=p.graph_index, layer=layer, x=x_i.contiguous(),
            edge_index=ei_i, edge_weight=ew_i, start_x=sx_i.contiguous(), start_edge_index=sei_i,
            rel_loss=loss if math.isfinite(loss) else float("nan"), start_loss=curves[i][0] if curves[i] else float("nan"),
            best_iteration=int(best_iter[i]), iterations=int(iterations[i]), loss_curve=curves[i],
            wall_s=wall / num, status=status, message=msg, num_candidates=cand_sizes[i] if cand_sizes else 0, step_s=step_s,
            options=opts.to_dict()))
    return results


def _as_graphs(graphs: Data | list[Data]) -> list[Data]:
    return [graphs] if isinstance(graphs, Data) else list(graphs)


def generate_metamers(model: GraphModel, graphs: Data | list[Data], kind: str, seeds: list[int], layer: int | None = None,
                      loss_nodes: Tensor | list[Tensor] | None = None, graph_indices: list[int] | None = None,
                      feature_freq: Tensor | None = None, progress: bool = True, **options) -> list[MetamerResult]:
    """Metamers of ``graphs`` (one node-task graph, or many graph-task graphs) for every seed.

    Args:
        model: a trained zoo model (any arch, node or graph task); kept in eval mode, unchanged.
        graphs: ``Data`` with ``x [N, F]`` and ``edge_index [2, E]``, or a list of them.
        kind: "feature", "structure" or "joint".
        seeds: restart seeds; results are ordered seed-major, then graph.
        layer: hidden layer to match (default: the last, the head's input).
        loss_nodes: node indices (per graph) the loss runs over; None: all nodes (or, with
            option ``nodes="target"``, this must be given).
        graph_indices: dataset indices of ``graphs`` (seed the per-graph random streams).
        feature_freq: per-feature frequency ``[F]`` for the binary start; default: from ``graphs``.
        options: :class:`MetamerOptions` fields (max_iterations, lr, candidate_ratio, ...).
    Returns: one :class:`MetamerResult` per (seed, graph).
    """
    _check_kind(kind)
    opts = MetamerOptions.from_kwargs(**options)
    layer = model.check_layer(layer)
    graph_list = _as_graphs(graphs)
    if not graph_list:
        raise UserError("no graphs given")
    if not seeds:
        raise UserError("give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seeds must be distinct, got {list(seeds)}")
    if model.config.task == "node" and len(graph_list) != 1:
        raise UserError("a node-classification model takes exactly one graph")
    if graph_indices is None:
        graph_indices = list(range(len(graph_list)))
    if opts.device is not None and torch.device(opts.device) != next(model.parameters()).device:
        import copy

        model = copy.deepcopy(model).to(opts.device)
    device = next(model.parameters()).device
    nodes_per_graph: list[Tensor] = []
    for i, g in enumerate(graph_list):
        if g.x is None or g.x.size(1) != model.config.in_channels:
            raise UserError(f"graph {i} has {None if g.x is None else g.x.size(1)} features; the model expects "
                            f"{model.config.in_channels}")
        if loss_nodes is None:
            nodes_per_graph.append(torch.arange(g.num_nodes))
        else:
            chosen = loss_nodes[i] if isinstance(loss_nodes, list) else loss_nodes
            nodes_per_graph.append(torch.as_tensor(chosen, dtype=torch.long).view(-1))
    if opts.nodes == "target" and loss_nodes is None:
        raise UserError("option nodes='target' needs loss_nodes (the target node indices)")
    freq = feature_freq if feature_freq is not None else feature_frequency([g.x for g in graph_list])
    batch_restarts = opts.batch_restarts if opts.batch_restarts is not None else BATCH_RESTARTS_BY_DEVICE.get(device.type, True)
    clean = [Data(x=g.x.float(), edge_index=g.edge_index.long(), num_nodes=g.num_nodes) for g in graph_list]
    problems = [[_Problem(g, s, gi, nodes) for g, gi, nodes in zip(clean, graph_indices, nodes_per_graph)] for s in seeds]
    results: list[MetamerResult] = []
    with frozen(model):
        if batch_restarts:
            flat = [p for group in problems for p in group]
            results = _solve(model, flat, kind, layer, opts, freq.to(device), progress,
                             f"{kind} metamers x{len(flat)}")
        else:
            for s, group in zip(seeds, problems):
                results += _solve(model, group, kind, layer, opts, freq.to(device), progress, f"{kind} metamer s{s}")
    return results


def feature_metamer(model: GraphModel, data: Data, seed: int = 0, layer: int | None = None, **options) -> MetamerResult:
    """A feature metamer of a node-task graph ``data`` (edges fixed); see :func:`generate_metamers`."""
    return generate_metamers(model, data, "feature", [seed], layer, **options)[0]


def structure_metamer(model: GraphModel, data: Data, seed: int = 0, layer: int | None = None, **options) -> MetamerResult:
    """A structure metamer of a node-task graph ``data`` (features fixed); see :func:`generate_metamers`."""
    return generate_metamers(model, data, "structure", [seed], layer, **options)[0]


def joint_metamer(model: GraphModel, data: Data, seed: int = 0, layer: int | None = None, **options) -> MetamerResult:
    """A joint (features and structure) metamer of a node-task graph; see :func:`generate_metamers`."""
    return generate_metamers(model, data, "joint", [seed], layer, **options)[0]
