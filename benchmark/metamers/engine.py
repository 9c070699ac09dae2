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
from benchmark.metamers.feature import BinaryFeatures, ContinuousFeatures, quantize, sparse_input
from benchmark.metamers.options import KINDS, MetamerOptions
from benchmark.vocabulary import EDGE_KINDS, FEATURE_KINDS
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
                   device: torch.device, kind: str) -> BinaryFeatures | ContinuousFeatures:
    mode = "continuous" if kind == "continuous" else opts.features
    binary = {"auto": is_binary(union.x), "binary": True, "continuous": False}[mode]
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
    cands, segs, counts, inits, sizes, budgets, origs = [], [], [], [], [], [], []
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
        # At least one edit, so a small graph's budget is never zero.
        budgets.append(max(1, int(round(opts.edge_budget * pairs.size(0)))) if pairs.size(0) else 0)
        is_orig = torch.zeros(cand.size(0), dtype=torch.bool)
        if opts.include_original_edges:
            is_orig[: pairs.size(0)] = True  # sample_candidates lists the original edges first
        origs.append(is_orig)
    budgeted = opts.edge_budget > 0 and opts.edges == "binary"
    if opts.edge_budget > 0 and not (opts.include_original_edges and opts.edges == "binary"):
        raise UserError("option edge_budget needs edges='binary' and include_original_edges=True")
    param = EdgeLogits(torch.cat(inits), torch.cat(segs), torch.tensor(counts), opts.edges, opts.slope,
                       opts.edge_count_weight, budget=torch.tensor(budgets) if budgeted else None,
                       original=torch.cat(origs) if budgeted else None).to(device)
    return param, torch.cat(cands).to(device), sizes


def _cosine_lr(step: int, total: int, lr: float, final: float) -> float:
    lo = lr * final
    return lo + 0.5 * (lr - lo) * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


@dataclass
class _Reference:
    """The original graphs' activations at ``layer`` and what the loss needs from them (no gradient)."""

    h: Tensor  # [R, d] every row of the stage's output: a node (hidden stages, node logits) or a graph (graph logits)
    h_loss: Tensor  # [n_loss, d] the loss rows (``h`` itself when the loss runs over every row)
    loss_owner: Tensor  # [n_loss] problem id of each loss row
    denom: Tensor  # [P] sum of squared norms of each problem's loss rows (the relative loss's divisor)
    unit: Tensor | None  # [n_loss, d] centred, unit-norm rows for the Pearson term (None: term off)
    loss_counts: Tensor | None  # [P] loss rows per problem (the Pearson term's mean)


@dataclass
class _BestIterate:
    """The best iterate of every problem so far, and how long ago it was found.

    ``objective`` decides what is best (``inf``: nothing finite yet); ``rel`` is ``L_rel`` there
    (what results report). The iterate is stored compactly: top-k columns (``idx``, ``keep``) for
    binary features or the matrix ``x`` for continuous ones, and a ``[C]`` mask of kept
    candidate edges (hard edges) or their weights (weighted edges).
    """

    objective: Tensor  # [P] on the device
    rel: Tensor  # [P] on the device
    iteration: Tensor  # [P] CPU, long
    since: Tensor  # [P] CPU, long: steps since the last improvement (the plateau stop)
    features: dict[str, Tensor] = field(default_factory=dict)
    edges: dict[str, Tensor] = field(default_factory=dict)

    @classmethod
    def empty(cls, num: int, device: torch.device) -> _BestIterate:
        objective = torch.full((num,), float("inf"), device=device)
        return cls(objective, objective.clone(), torch.zeros(num, dtype=torch.long), torch.zeros(num, dtype=torch.long))

    def keep(self, improved: Tensor, step: int, losses: Tensor, rel: Tensor) -> None:
        """Record the scores of the problems that ``improved`` at ``step`` (the iterate: :meth:`keep_rows`)."""
        self.objective = torch.where(improved, losses, self.objective)
        self.rel = torch.where(improved, rel, self.rel)
        imp_cpu = improved.cpu()
        self.iteration[imp_cpu] = step
        self.since[imp_cpu] = 0

    @staticmethod
    def keep_rows(store: dict[str, Tensor], current: dict[str, Tensor], rows: Tensor) -> None:
        """Copy the ``rows`` of ``current`` into ``store``; the first call copies every row."""
        if not store:
            store.update({name: value.clone() for name, value in current.items()})
            return
        for name, value in current.items():
            store[name][rows] = value[rows]


class _Run:
    """One batch of problems solved together, in named phases.

    ``__init__`` initialises (reference activations, parameters, optimiser), :meth:`step`
    evaluates the current iterate and takes one Adam step, :meth:`keep_best` updates the best
    iterates, :meth:`track` the curves and stopping rules, and :meth:`assemble` turns the best
    iterates into results.
    """

    def __init__(self, model: GraphModel, problems: list[_Problem], kind: str, layer: int, opts: MetamerOptions,
                 freq: Tensor) -> None:
        self.model, self.problems, self.kind, self.layer, self.opts = model, problems, kind, layer, opts
        self.device = device = next(model.parameters()).device
        self.union = union = _Union(problems, device)
        self.num = num = len(problems)
        self.batch = union.owner if (model.config.task == "graph" or num > 1) else None
        # Rows of the stage's output the loss runs over: None = every row. A graph task's logits,
        # and its hidden stages read out (graph_match="readout"), have one row per graph, i.e. per
        # problem, and every one is in the loss.
        graph_task = model.config.task == "graph"
        self.readout = graph_task and layer != model.logits_stage and opts.graph_match == "readout"
        graph_rows = graph_task and (layer == model.logits_stage or self.readout)
        self.loss_rows = None if (union.all_nodes or graph_rows) else union.loss_nodes
        self.row_owner = torch.arange(num, device=device) if graph_rows else union.owner
        self.ref = self._reference()
        self.feat = _feature_param(problems, union, opts, freq, device, kind) if kind in FEATURE_KINDS else None
        self.edges, self.cand, self.cand_sizes = (_edge_param(problems, union, opts, device)
                                                  if kind in EDGE_KINDS else (None, None, []))
        # Both directions of every candidate pair, fixed all run long.
        self.cand_index = torch.cat([self.cand.t(), self.cand.t().flip(0)], 1) if self.edges is not None else None
        groups = []
        if self.feat is not None:
            groups.append({"params": list(self.feat.parameters()), "lr": opts.lr, "base": opts.lr})
        if self.edges is not None:
            groups.append({"params": list(self.edges.parameters()), "lr": opts.edge_lr, "base": opts.edge_lr})
        adam_kw = {"fused": True} if device.type in ("cpu", "cuda") else {}
        self.optimizer = torch.optim.Adam(groups, **adam_kw)
        self.best = _BestIterate.empty(num, device)
        self.active = torch.ones(num, dtype=torch.bool, device=device)
        self.iterations = torch.zeros(num, dtype=torch.long)
        self.curves: list[list[float]] = [[] for _ in range(num)]
        self.messages = ["" for _ in range(num)]
        self.start_feat: Tensor | None = None  # the far twin (iterate 0)
        self.start_edges: Tensor | None = None

    def _reference(self) -> _Reference:
        union, num = self.union, self.num
        with torch.no_grad():
            h = self.activations(union.x, union.edge_index, None)
            rows = self.loss_rows
            h_loss = h if rows is None else h[rows]
            loss_owner = self.row_owner if rows is None else self.row_owner[rows]
            denom = torch.zeros(num, device=self.device).index_add_(0, loss_owner, (h_loss**2).sum(1)).clamp(min=1e-12)
            unit = loss_counts = None
            if self.opts.pearson_weight > 0:
                centred = h_loss - h_loss.mean(1, keepdim=True)
                unit = centred / centred.norm(dim=1, keepdim=True).clamp(min=1e-12)
                loss_counts = torch.bincount(loss_owner, minlength=num).clamp(min=1).to(h.dtype)
        return _Reference(h, h_loss, loss_owner, denom, unit, loss_counts)

    def activations(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None) -> Tensor:
        """What the loss matches: the stage's rows, or per graph its readout (``[num, d]``)."""
        h = self.model.stage(x, edge_index, edge_weight, batch=self.batch, stage=self.layer)
        return self.model.head.pool(h, self.batch) if self.readout else h

    def inputs(self) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """The current iterate ``(x, edge_index, edge_weight, regulariser)``."""
        reg = torch.zeros((), device=self.device)
        x, ei, ew = self.union.x, self.union.edge_index, None
        if self.feat is not None:
            x, r = self.feat()
            reg = reg + r
        if self.edges is not None:
            w, r = self.edges()
            ei, ew = self.cand_index, torch.cat([w, w])
            reg = reg + r
        return x, ei, ew, reg

    def objective(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Per-problem ``(objective, L_rel)`` of activations ``h [N, d]``."""
        ref, rows, num = self.ref, self.loss_rows, self.num
        diff = h - ref.h if rows is None else h[rows] - ref.h_loss
        per_problem = torch.zeros(num, device=self.device).index_add_(0, ref.loss_owner, (diff * diff).sum(1)) / ref.denom
        objective = per_problem
        if ref.unit is not None:
            h_loss = h if rows is None else h[rows]
            centred = h_loss - h_loss.mean(1, keepdim=True)
            r = (centred * ref.unit).sum(1) / centred.norm(dim=1).clamp(min=1e-12)
            objective = objective + self.opts.pearson_weight * torch.zeros(num, device=self.device).index_add_(
                0, ref.loss_owner, 1 - r) / ref.loss_counts
        return objective, per_problem

    def step(self, step: int, holder) -> tuple[Tensor, Tensor]:
        """Evaluate iterate ``step``, keep what is best, then (while any problem runs) take one Adam step.

        Returns the per-problem objective and ``L_rel`` of the evaluated iterate.
        """
        opts, feat, edges = self.opts, self.feat, self.edges
        for group in self.optimizer.param_groups:
            group["lr"] = _cosine_lr(step, opts.max_iterations, group["base"], opts.lr_final)
        x, ei, ew, reg = self.inputs()
        if holder is not None and feat is not None:
            holder.x, holder.idx, holder.keep = x, feat.idx, feat.keep
        h = self.activations(x, ei, ew)
        objective, per_problem = self.objective(h)
        total = objective.sum() + reg
        losses, rel = objective.detach(), per_problem.detach()
        if step == 0:  # the starting point: the far twin
            if feat is not None:
                self.start_feat = feat.hard().cpu() if isinstance(feat, BinaryFeatures) else feat.x.detach().cpu().clone()
            if edges is not None:
                self.start_edges = edges.hard().cpu()
        finite = torch.isfinite(losses)
        improved = self.active & finite & (losses < self.best.objective)
        if bool(improved.any()):
            self.keep_best(improved, step, losses, rel, x, ew)
        self.track(step, improved, losses, rel, finite)
        if not bool(self.active.any()):
            return losses, rel
        self.optimizer.zero_grad(set_to_none=True)
        if total.requires_grad:
            total.backward()
            if isinstance(feat, BinaryFeatures):
                feat.logit_grad()
            self.optimizer.step()
        if isinstance(feat, ContinuousFeatures):
            feat.project()
        return losses, rel

    def keep_best(self, improved: Tensor, step: int, losses: Tensor, rel: Tensor, x: Tensor, ew: Tensor | None) -> None:
        """Make the current iterate the best one of every problem that ``improved``."""
        best, feat, edges = self.best, self.feat, self.edges
        best.keep(improved, step, losses, rel)
        rows = improved[self.union.owner]
        if isinstance(feat, BinaryFeatures):
            best.keep_rows(best.features, {"idx": feat.idx, "keep": feat.keep}, rows)
        elif feat is not None:
            best.keep_rows(best.features, {"x": x.detach()}, rows)
        if edges is not None:
            current = edges.hard() if edges.mode == "weighted" else ew[: self.cand.size(0)].detach() > 0.5
            best.keep_rows(best.edges, {"edges": current}, improved[edges.segment])

    def track(self, step: int, improved: Tensor, losses: Tensor, rel: Tensor, finite: Tensor) -> None:
        """Loss curves, iteration counts and the stopping rules (tolerance, non-finite loss, plateau)."""
        opts, active = self.opts, self.active
        self.best.since[(~improved).cpu() & active.cpu()] += 1
        act_cpu = active.cpu()
        self.iterations[act_cpu] = step + 1
        for i in torch.nonzero(act_cpu).view(-1).tolist():
            self.curves[i].append(float(rel[i]))
        done = (losses <= opts.tolerance) | ~finite
        if opts.patience:
            done |= (self.best.since >= opts.patience).to(self.device)
        for i in torch.nonzero((done & active).cpu()).view(-1).tolist():
            if not bool(finite[i]):
                self.messages[i] = f"loss became non-finite at iteration {step}"
        active &= ~done

    def optimise(self, progress: bool, desc: str) -> list[float]:
        """Run :meth:`step` until every problem stops; returns each step's wall time."""
        step_times: list[float] = []
        feat, best = self.feat, self.best
        bar = tqdm(range(self.opts.max_iterations), desc=desc, disable=not progress, leave=False, mininterval=0.5)
        ctx = sparse_input(self.model) if feat is None or isinstance(feat, BinaryFeatures) else contextlib.nullcontext(None)
        with ctx as holder:
            if holder is not None and feat is None:
                holder.fixed = self.union.x
            for step in bar:
                t_step = time.perf_counter()
                act_before = self.active.cpu()
                losses, _ = self.step(step, holder)
                if progress:  # the mean loss of the problems that ran this step
                    shown = losses[act_before.to(self.device)].mean() if act_before.any() else best.objective.mean()
                    bar.set_postfix(loss=f"{float(shown):.4f}", best=f"{float(best.objective.mean()):.4f}")
                if not bool(self.active.any()):
                    break
                step_times.append(time.perf_counter() - t_step)
        bar.close()
        return step_times

    def assemble(self, wall: float, step_s: float) -> list[MetamerResult]:
        """Per-problem results from the best iterates (graphs back in each problem's own node ids)."""
        union, feat, best, opts = self.union, self.feat, self.best, self.opts
        if isinstance(feat, BinaryFeatures):
            x_best = torch.zeros_like(union.x).scatter_(1, best.features["idx"], best.features["keep"]).cpu()
        elif feat is not None:
            x_best = best.features["x"].cpu()
            if opts.continuous_levels:  # what is stored is the metamer: quantise before anything reads it
                x_best = quantize(x_best, feat.lo.cpu(), feat.hi.cpu(), opts.continuous_levels)
        else:
            x_best = union.x.cpu()
        cand_cpu = self.cand.cpu() if self.cand is not None else None
        best_edges_cpu = best.edges["edges"].cpu() if best.edges else None
        cand_sizes = self.cand_sizes
        results, cand_start = [], 0
        for i, (p, off) in enumerate(zip(self.problems, union.offsets)):
            n = p.data.num_nodes
            ew_i = None
            if cand_cpu is not None:
                c_i = cand_cpu[cand_start : cand_start + cand_sizes[i]] - off
                b_i = best_edges_cpu[cand_start : cand_start + cand_sizes[i]]
                s_i = self.start_edges[cand_start : cand_start + cand_sizes[i]]
                cand_start += cand_sizes[i]
                if self.edges.mode == "weighted":
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
            status, msg = self._status(i)
            loss, curve = float(best.rel[i]), self.curves[i]
            sx_i = self.start_feat[off : off + n] if self.start_feat is not None else p.data.x.cpu()
            results.append(MetamerResult(
                kind=self.kind, seed=p.seed, graph_index=p.graph_index, layer=self.layer, x=x_best[off : off + n].contiguous(),
                edge_index=ei_i, edge_weight=ew_i, start_x=sx_i.contiguous(), start_edge_index=sei_i,
                rel_loss=loss if math.isfinite(loss) else float("nan"), start_loss=curve[0] if curve else float("nan"),
                best_iteration=int(best.iteration[i]), iterations=int(self.iterations[i]), loss_curve=curve,
                wall_s=wall / self.num, status=status, message=msg, num_candidates=cand_sizes[i] if cand_sizes else 0,
                step_s=step_s, options=opts.to_dict()))
        return results

    def _status(self, i: int) -> tuple[str, str]:
        """Problem ``i``'s ``(status, message)``: failed, converged (tolerance reached) or ran."""
        objective, loss, curve = float(self.best.objective[i]), float(self.best.rel[i]), self.curves[i]
        if not math.isfinite(objective):
            status, msg = "failed", self.messages[i] or "no finite loss was reached"
        elif objective <= self.opts.tolerance:
            status, msg = "converged", ""
        elif curve and loss >= curve[0] * 0.999:
            status, msg = "failed", f"the loss never fell below its starting value {curve[0]:.4g}"
        else:
            status, msg = "ran", ""
        return status, self.messages[i] or msg


def _solve(model: GraphModel, problems: list[_Problem], kind: str, layer: int, opts: MetamerOptions,
           freq: Tensor, progress: bool, desc: str) -> list[MetamerResult]:
    """Initialise, optimise (evaluate, keep the best, step) and assemble one batch of problems."""
    start_time = time.perf_counter()
    run = _Run(model, problems, kind, layer, opts, freq)
    step_times = run.optimise(progress, desc)
    step_s = float(torch.tensor(step_times).median()) if step_times else float("nan")
    return run.assemble(time.perf_counter() - start_time, step_s)


def _as_graphs(graphs: Data | list[Data]) -> list[Data]:
    return [graphs] if isinstance(graphs, Data) else list(graphs)


def generate_metamers(model: GraphModel, graphs: Data | list[Data], kind: str, seeds: list[int], layer: int | None = None,
                      loss_nodes: Tensor | list[Tensor] | None = None, graph_indices: list[int] | None = None,
                      feature_freq: Tensor | None = None, progress: bool = True, **options) -> list[MetamerResult]:
    """Metamers of ``graphs`` (one node-task graph, or many graph-task graphs) for every seed.

    Args:
        model: a trained zoo model (any arch, node or graph task); kept in eval mode, unchanged.
        graphs: ``Data`` with ``x [N, F]`` and ``edge_index [2, E]``, or a list of them.
        kind: "feature", "continuous", "structure" or "joint".
        seeds: restart seeds; results are ordered seed-major, then graph.
        layer: stage to match: a hidden layer ``1..L`` or the logits ``L + 1`` (default: the last
            hidden layer, the head's input).
        loss_nodes: node indices (per graph) the loss runs over; None: all nodes (or, with
            option ``nodes="target"``, this must be given).
        graph_indices: dataset indices of ``graphs`` (seed the per-graph random streams).
        feature_freq: per-feature frequency ``[F]`` for the binary start; default: from ``graphs``.
        options: :class:`MetamerOptions` fields (max_iterations, lr, candidate_ratio, ...).
    Returns: one :class:`MetamerResult` per (seed, graph).
    """
    _check_kind(kind)
    opts = MetamerOptions.from_kwargs(**options)
    layer = model.check_stage(layer)
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
