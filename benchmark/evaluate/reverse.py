"""The reverse direction of scores v2: metamers of the submitted model, judged by the release's panel.

    protocol = release.reverse                              # None: the release states no reverse direction
    block = ReverseRun(release, num_bootstrap=1000).run(models_per_dataset, seeds=[0, 1, 2], entry="gcn-baseline")
    result["reverse"] = block                               # benchmark.evaluate.results

Contract (DESIGN 4, issue 12.2; Feather et al.'s protocol and the seed paper's): for every model
seed ``k`` of the submission ``M``, every dataset and kind of the release's ``reverse`` block, every
metamer seed ``s`` of it and every stage of ``M`` the release names (``early``, ``late``,
``logits``, mapped to ``M``'s own layers by :func:`benchmark.release.build.stage_layers`), the
engine makes a metamer of ``M_k`` with the release's engine options, its near twin and its far
twin matched to the metamer's input distance, and judges the metamer's validity for ``M_k`` with
the release's criterion (:func:`benchmark.metamers.make_frozen_set`, protocol v2). Then

- every model of the release's reference panel (its checkpoints; never submissions) classifies
  the original, the metamer, the near and the far twin; on the units ``U_k`` where the metamer is
  valid for ``M_k`` (test nodes x metamer seeds), ``acc_role`` is the panel's accuracy averaged
  over panel models and ``U_k``, and
  ``recognisability = (acc_metamer - acc_far) / (acc_original - acc_far)``: 1 when the panel
  recognises ``M``'s metamers as well as the originals, 0 when no better than inputs changed as
  much at random;
- ``consistency`` is Spearman's rho between input similarity to the original (the release's
  per-node ``similarity``) and ``M_k``'s activation similarity at the stage (Pearson r of the
  activations centred by the original's population mean, the validity criterion's statistic),
  pooled over near twins, metamers and far twins on all test nodes (METRICS.md says why all).

Scores are computed per model seed, reported as mean and std over seeds, with a two-level
bootstrap CI (units within each seed, then seeds), as the forward scores
(:mod:`benchmark.metrics.scores`).

Why per-seed caching: the metamers cost minutes; each model seed's outcomes (panel predictions,
masks and similarities: a few hundred KB, not the metamers) are written atomically to
``$METAMER_BENCH_CACHE/reverse/`` under a key of the release manifest, the protocol, this
module's format and the model's weights, so an interrupted run redoes only unfinished seeds and
a changed input never reuses a stale file. Why a budget: the protocol must be affordable for
every submission (at most 10 minutes of a 2-core CPU for 3 seeds); each seed's wall and CPU time
are recorded (also across resumes) and a run whose projected CPU time exceeds ``budget_s`` stops
with an error naming the figures, its finished seeds kept. The budget counts the process's CPU
seconds, not wall seconds: with evaluate's one torch thread they equal the wall time of an
unloaded core, and unlike wall time they do not grow when other jobs share the machine (on this
project's shared 2-core machine wall time measured up to 5x the CPU time).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from benchmark.errors import UserError
from benchmark.files import atomic_write_bytes
from benchmark.metrics.scores import (
    CI_LEVEL,
    MIN_UNITS,
    resample_seeds,
    seed_draws,
    stable_seed,
    summarize,
    unit_weights,
    weighted_spearman,
)
from benchmark.release.opened import Release, ReverseProtocol

# Version of the reverse scoring rules and cache format, stamped in ``reverse.version`` (release v1
# results carry no reverse block, so EVALUATOR_VERSION, and every v1 file, stays as it is).
REVERSE_VERSION = "1.0.0"
# At most 10 minutes of a 2-core CPU per submission (3 seeds), DESIGN 4.
REVERSE_BUDGET_S = 600.0
ROLES = ("original", "metamer", "near", "far")
VARIANTS = ("metamer", "near", "far")
SCORES = ("panel_clean_acc", "panel_metamer_acc", "panel_near_acc", "panel_far_acc", "recognisability",
          "consistency", "metamer_validity")
DIGITS = 6


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    out = round(float(value), DIGITS)
    return 0.0 if out == 0 else out


# -- scores -----------------------------------------------------------------------------------------------------
def recognisability(acc_original: Tensor | float, acc_metamer: Tensor | float, acc_far: Tensor | float) -> Tensor:
    """``(acc_metamer - acc_far) / (acc_original - acc_far)`` elementwise; NaN where the denominator is 0
    (originals no better recognised than far twins: the ratio carries no information).

    Shapes broadcast (``[B]`` replicates, ``[K]`` seeds or scalars); float64 out.
    """
    o, m, f = (torch.as_tensor(v, dtype=torch.float64) for v in (acc_original, acc_metamer, acc_far))
    den = o - f
    return torch.where(den.abs() > 1e-12, (m - f) / torch.where(den.abs() > 1e-12, den, torch.ones_like(den)),
                       torch.full_like(den, float("nan")))


def panel_accuracies(correct: Mapping[str, Tensor], weights: Tensor) -> dict[str, Tensor]:
    """Panel accuracy per role under unit weights.

    ``correct[role]``: ``[P, n]`` bool/float, panel model ``p`` right on unit ``i``; ``weights``: ``[B, n]``.
    Returns ``{role: [B]}`` = mean over the panel of ``sum_i w_i c_pi / sum_i w_i``.
    """
    total = weights.sum(1).clamp_min(1e-300)
    return {role: (weights @ c.double().mean(0)) / total for role, c in correct.items()}


def consistency(input_similarity: Tensor, activation_similarity: Tensor, weights: Tensor) -> Tensor:
    """Spearman's rho of input and activation similarity ``[n_obs]`` under weights ``[B, n_obs]`` -> ``[B]``."""
    return weighted_spearman(input_similarity.double(), activation_similarity.double(), weights)


# -- exported programs ------------------------------------------------------------------------------------------
class _Config:
    def __init__(self, task: str, in_channels: int, out_channels: int, arch: str) -> None:
        self.task, self.in_channels, self.out_channels, self.arch = task, in_channels, out_channels, arch


class ProgramStages(torch.nn.Module):
    """An exported program (:class:`benchmark.programs.ProgramModel`) with the interface the metamer
    engine drives: ``stage(x, edge_index, edge_weight, batch, stage=l)`` for ``l`` in
    ``1..num_hidden_layers`` (the card's declared stages, in order) and ``logits_stage``
    (``num_hidden_layers + 1``), ``check_stage``, ``config.task / in_channels / out_channels``.
    Node tasks only (graph-task metamers match the model's own readout, which a program does not expose).
    """

    def __init__(self, program, in_channels: int, out_channels: int, name: str = "program") -> None:
        super().__init__()
        if program.task != "node":
            raise UserError(f"{name}: the reverse direction runs exported programs on node tasks only; "
                            f"this program is a {program.task}-task model")
        self.program = program
        self.config = _Config(program.task, int(in_channels), int(out_channels), name)

    @property
    def num_hidden_layers(self) -> int:
        return len(self.program.stage_names)

    @property
    def logits_stage(self) -> int:
        return self.num_hidden_layers + 1

    @property
    def default_layer(self) -> int:
        return max(self.num_hidden_layers, 1)

    def check_stage(self, stage: int | None) -> int:
        if stage is None:
            return self.default_layer
        if not isinstance(stage, int) or isinstance(stage, bool) or not 1 <= stage <= self.logits_stage:
            raise UserError(f"stage {stage!r} is not valid for {self.config.arch}; valid stages: "
                            f"1..{self.num_hidden_layers} (declared {self.program.stage_names}) and "
                            f"{self.logits_stage} (the logits)")
        return stage

    def stage(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None, batch: Tensor | None = None,
              stage: int | None = None) -> Tensor:
        stage = self.check_stage(stage)
        out = self.program.stages(x, edge_index, edge_weight, batch)
        return out[0] if stage == self.logits_stage else out[stage]

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None,
                batch: Tensor | None = None) -> Tensor:
        return self.program.stages(x, edge_index, edge_weight, batch)[0]


# -- one model seed ---------------------------------------------------------------------------------------------
def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of a model's class name and state (names, dtypes, shapes, bytes), in name order."""
    digest = hashlib.sha256(type(model).__name__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _stage_plan(model, protocol: ReverseProtocol) -> list[tuple[int, str]]:
    from benchmark.release.build import stage_layers

    return stage_layers(list(protocol.stages), int(model.num_hidden_layers))


def _dataset_of(record, dims) -> object:
    """A :class:`benchmark.graphs.GraphDataset` whose test split is the record's target nodes."""
    from torch_geometric.data import Data

    from benchmark.graphs import GraphDataset

    data = Data(x=record.x.float(), edge_index=record.edge_index.long(), y=record.y.long(),
                num_nodes=int(record.num_nodes))
    return GraphDataset(record.dataset, "node", [data], dims.num_features, dims.num_classes,
                        {"test": record.target.nonzero().view(-1)})


@torch.no_grad()
def panel_predictions(panel, record, target: Tensor) -> Tensor:
    """``[P, |target|]`` predictions of every panel model on ``record`` at the target nodes."""
    x, e = record.x.float(), record.edge_index.long()
    return torch.stack([m(x, e).argmax(-1)[target] for _, m in panel])


@torch.no_grad()
def _judge(model, panel, original, variants: dict, layer: int, target: Tensor,
           original_pred: Tensor | None = None) -> dict[str, Tensor]:
    """Panel predictions ``[P, 4, T]`` (original, metamer, near, far) and ``model``'s activation and input
    similarity ``[3, T]`` (metamer, near, far) on the target nodes. ``original_pred``: the panel's
    predictions on the original, when already known (they do not depend on the stage or the seed)."""
    from benchmark.metamers.validity import pearson_rows

    x, e = original.x.float(), original.edge_index.long()
    h = model.stage(x, e, stage=layer)
    centre = h.mean(0, keepdim=True)
    first = original_pred if original_pred is not None else panel_predictions(panel, original, target)
    preds = [first, *(panel_predictions(panel, r, target) for r in variants.values())]
    act = [pearson_rows(h[target] - centre, model.stage(r.x.float(), r.edge_index.long(), stage=layer)[target] - centre)
           for r in variants.values()]
    return {"pred": torch.stack(preds, 1), "act_sim": torch.stack(act),
            "input_sim": torch.stack([r.similarity[target].float() for r in variants.values()])}


def run_seed(model, release: Release, protocol: ReverseProtocol, panels: Mapping[str, list], originals: Mapping,
             label: str, progress: bool, original_preds: Mapping[str, Tensor] | None = None
             ) -> tuple[dict[str, Tensor], dict]:
    """Metamers of one model seed at every (dataset, kind, stage, metamer seed), judged by the panels.

    Returns ``(tensors, meta)``: per job key ``"<dataset>/<kind>/L<layer>/s<seed>"`` the tensors
    ``<key>/pred`` ``[P, 4, T]`` (panel predictions on original, metamer, near, far), ``<key>/valid``
    ``[T]`` (metamer valid for the model), ``<key>/act_sim`` and ``<key>/input_sim`` ``[3, T]``
    (metamer, near, far); ``meta`` names the stages, panels, metamer statistics and compute time.
    """
    from tqdm.auto import tqdm

    from benchmark.metamers import make_frozen_set

    start, cpu = time.perf_counter(), time.process_time()
    plan = _stage_plan(model, protocol)
    jobs = [(d, k, layer, stage) for d in protocol.datasets for k in protocol.kinds for layer, stage in plan]
    tensors: dict[str, Tensor] = {}
    meta: dict = {"stages": {str(layer): stage for layer, stage in plan}, "jobs": {}}
    bar = tqdm(jobs, desc=f"{label} reverse", unit="stage", disable=not progress, leave=True)
    for dataset, kind, layer, stage in bar:
        bar.set_postfix_str(f"{dataset} {kind} {stage}")
        record = originals[dataset]
        target = record.target.nonzero().view(-1)
        frozen_set = make_frozen_set(_dataset_of(record, release.dims[dataset]), model, label, kind,
                                     list(protocol.seeds), layer=layer, progress=False, protocol="v2",
                                     validity=protocol.validity, validity_quantile=protocol.validity_quantile,
                                     **protocol.metamer_options)
        original = frozen_set.originals[0]
        for seed in protocol.seeds:
            variants = {role: next(r for r in frozen_set.by_role(role) if r.seed == seed) for role in VARIANTS}
            key = f"{dataset}/{kind}/L{layer}/s{seed}"
            judged = _judge(model, panels[dataset], original, variants, layer, target,
                            (original_preds or {}).get(dataset))
            tensors[f"{key}/pred"] = judged["pred"].to(torch.int16).contiguous()
            tensors[f"{key}/valid"] = variants["metamer"].valid[target].to(torch.uint8).contiguous()
            tensors[f"{key}/act_sim"] = judged["act_sim"].float().contiguous()
            tensors[f"{key}/input_sim"] = judged["input_sim"].float().contiguous()
            tensors[f"{key}/y"] = record.y[target].to(torch.int16).contiguous()
            stats = variants["metamer"].stats
            meta["jobs"][key] = {"dataset": dataset, "kind": kind, "layer": layer, "stage": stage, "seed": seed,
                                 **{name: stats.get(name) for name in ("rel_loss", "iterations", "best_iteration",
                                                                       "status", "validity_rate")}}
    meta["compute_s"] = round(time.perf_counter() - start, 3)
    meta["cpu_s"] = round(time.process_time() - cpu, 3)
    return tensors, meta


# -- the cache --------------------------------------------------------------------------------------------------
def default_cache_root() -> Path:
    from benchmark.graphs import default_cache_dir

    return default_cache_dir() / "reverse"


def cache_key(release: Release, protocol: ReverseProtocol, fingerprint: str, panels: Mapping[str, list]) -> str:
    """What a cached seed depends on: the release manifest, the protocol, the panel, this module's
    version, the model's weights. Any change gives a new key, so no stale file is ever read."""
    payload = json.dumps({"manifest": release.manifest_sha256, "protocol": protocol.to_dict(),
                          "panel": {d: [n for n, _ in p] for d, p in sorted(panels.items())},
                          "version": REVERSE_VERSION, "model": fingerprint}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def read_cached(path: Path) -> tuple[dict[str, Tensor], dict] | None:
    """A finished seed's outcomes, or ``None`` when there is no (readable) file: a torn or foreign file
    is not trusted, the seed is redone."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["reverse"])
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception:  # noqa: BLE001 - any unreadable cache file is redone, never trusted
        return None


def write_cached(path: Path, tensors: dict[str, Tensor], meta: dict) -> None:
    """Write a finished seed atomically (temporary file, then rename): an interruption leaves the
    old state or the new file, never half of one."""
    from safetensors.torch import save

    atomic_write_bytes(path, save(dict(sorted(tensors.items())), metadata={"reverse": json.dumps(meta, sort_keys=True)}))


# -- the run ----------------------------------------------------------------------------------------------------
class BudgetExceeded(UserError):
    """The reverse direction would take longer than its budget; finished seeds stay cached."""


class ReverseRun:
    """Runs and scores the reverse direction of one release (see the module docstring).

    Args:
        release: an opened :class:`Release` whose manifest states ``reverse`` (else :class:`UserError`).
        num_bootstrap, bootstrap_seed: the CIs' replicates and their seed (as the forward scores).
        cache_root: where finished seeds are kept (default ``$METAMER_BENCH_CACHE/reverse``);
            ``use_cache=False``: nothing is read or written there (``--reproduce``).
        budget_s: the CPU seconds a submission may take, all seeds together (default 600);
            ``None``: measured, not enforced.
    """

    def __init__(self, release: Release, num_bootstrap: int = 1000, bootstrap_seed: int = 0,
                 cache_root: str | os.PathLike | None = None, use_cache: bool = True,
                 budget_s: float | None = REVERSE_BUDGET_S, device: str = "cpu") -> None:
        protocol = release.reverse
        if protocol is None:
            raise UserError(f"release {release.name} {release.version} states no reverse direction "
                            f"(generator.config.reverse in its manifest); it has forward scores only")
        if budget_s is not None and not float(budget_s) > 0:
            raise UserError(f"the reverse budget must be > 0 seconds (or None: not enforced), got {budget_s!r}")
        self.release, self.protocol = release, protocol
        self.num_bootstrap, self.bootstrap_seed = int(num_bootstrap), int(bootstrap_seed)
        self.cache_root = Path(cache_root) if cache_root is not None else default_cache_root()
        self.use_cache = use_cache
        self.budget_s = None if budget_s is None else float(budget_s)
        self.device = device
        self.panels = {d: release.panel(d, device) for d in protocol.datasets}
        self.originals = {d: release.original(d) for d in protocol.datasets}
        self.original_preds = {d: panel_predictions(self.panels[d], self.originals[d],
                                                    self.originals[d].target.nonzero().view(-1))
                               for d in protocol.datasets}

    def adapt(self, models: Mapping[str, Sequence], label: str) -> dict[str, list]:
        """``{dataset: [model per seed]}`` with exported programs wrapped in :class:`ProgramStages`;
        a dataset of the protocol that ``models`` lacks is an error naming both lists."""
        from benchmark.programs import ProgramModel

        missing = sorted(set(self.protocol.datasets) - set(models))
        if missing:
            raise UserError(f"the reverse direction of {self.release.name} {self.release.version} runs on "
                            f"{list(self.protocol.datasets)}; no models for {missing} (given: {sorted(models)})")
        out = {}
        for d in self.protocol.datasets:
            dims = self.release.dims[d]
            out[d] = [ProgramStages(m, dims.num_features, dims.num_classes, label) if isinstance(m, ProgramModel)
                      else m for m in models[d]]
        return out

    def run(self, models: Mapping[str, Sequence], seeds: Sequence[int], label: str,
            progress: bool = False) -> dict:
        """Make, judge and score the metamers of every model seed; returns the results file's ``reverse`` block.

        ``models``: ``{dataset: [model per seed]}`` (zoo models or exported programs), ``seeds`` their
        training seeds in order. Seeds found in the cache are not redone.
        """
        models = self.adapt(models, label)
        seeds = [int(s) for s in seeds]
        if any(len(models[d]) != len(seeds) for d in self.protocol.datasets):
            raise UserError(f"one model per seed {seeds} for every reverse dataset {list(self.protocol.datasets)}")
        outcomes, metas = [], []
        spent = 0.0  # CPU seconds: what the budget counts (module docstring)
        for i, seed in enumerate(seeds):
            per_dataset = {d: models[d][i] for d in self.protocol.datasets}
            tensors, meta = self._seed(per_dataset, seed, label, progress)
            spent += meta["cpu_s"]
            outcomes.append(tensors)
            metas.append(meta)
            left = len(seeds) - i - 1
            projected = spent + left * spent / (i + 1)
            if self.budget_s is not None and left and projected > self.budget_s:
                raise BudgetExceeded(
                    f"{label}: the reverse direction would take about {projected:.0f} CPU s for {len(seeds)} seeds "
                    f"({spent:.0f} s for {i + 1}), over its budget of {self.budget_s:.0f} s; the finished seeds are "
                    f"cached in {self.cache_root} and are not redone. Skip it with --no-reverse, or raise the budget "
                    f"with --reverse-budget SECONDS to measure it")
        if self.budget_s is not None and spent > self.budget_s:
            raise BudgetExceeded(f"{label}: the reverse direction took {spent:.0f} CPU s for {len(seeds)} seeds, over its "
                                 f"budget of {self.budget_s:.0f} s (raise it with --reverse-budget SECONDS)")
        block = self.score(outcomes, metas, seeds)
        block["timing"] = {"cpu_s": round(spent, 2), "seed_cpu_s": [m["cpu_s"] for m in metas],
                           "compute_s": round(sum(m["compute_s"] for m in metas), 2),
                           "seed_compute_s": [m["compute_s"] for m in metas],
                           "budget_s": self.budget_s, "within_budget": self.budget_s is None or spent <= self.budget_s,
                           "threads": torch.get_num_threads()}
        return block

    def _seed(self, models: Mapping[str, object], seed: int, label: str, progress: bool) -> tuple[dict, dict]:
        fingerprint = hashlib.sha256("".join(model_fingerprint(models[d]) for d in sorted(models)).encode()).hexdigest()
        path = self.cache_root / cache_key(self.release, self.protocol, fingerprint, self.panels) / f"seed-{seed}.safetensors"
        if self.use_cache:
            cached = read_cached(path)
            if cached is not None:
                return cached[0], {**cached[1], "cached": True}
        tensors, meta = {}, {"stages": {}, "jobs": {}, "compute_s": 0.0, "cpu_s": 0.0}
        for d in self.protocol.datasets:  # one dataset at a time, each with the model trained on it
            one = ReverseProtocol((d,), *[getattr(self.protocol, f) for f in ("kinds", "seeds", "stages",
                                                                                  "metamer_options", "validity",
                                                                                  "validity_quantile")])
            t, m = run_seed(models[d], self.release, one, self.panels, self.originals, f"{label} s{seed}", progress,
                            self.original_preds)
            tensors.update(t)
            meta["stages"][d] = m["stages"]
            meta["jobs"].update(m["jobs"])
            meta["compute_s"] = round(meta["compute_s"] + m["compute_s"], 3)
            meta["cpu_s"] = round(meta["cpu_s"] + m["cpu_s"], 3)
        if self.use_cache:
            write_cached(path, tensors, meta)
        return tensors, {**meta, "cached": False}

    # -- scoring -------------------------------------------------------------------------------------------------
    def score(self, outcomes: Sequence[dict[str, Tensor]], metas: Sequence[dict], seeds: Sequence[int]) -> dict:
        """The ``reverse`` block from each seed's outcomes (as :meth:`run` gathers them)."""
        rows = []
        groups: dict[tuple, list[list[str]]] = {}
        for k, meta in enumerate(metas):
            for key, job in sorted(meta["jobs"].items()):
                group = (job["dataset"], job["kind"], job["stage"])
                groups.setdefault(group, [[] for _ in metas])[k].append(key)
        order = {"early": 0, "hidden": 0, "late": 1, "logits": 2}
        for (dataset, kind, stage), keys in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1], order.get(g[0][2], 9))):
            rows.append(self._row(dataset, kind, stage, keys, outcomes, metas))
        return {"version": REVERSE_VERSION, "protocol": self.protocol.to_dict(),
                "panel": {d: [n for n, _ in p] for d, p in sorted(self.panels.items())},
                "seeds": list(seeds), "by_stage": rows,
                "bootstrap": {"replicates": self.num_bootstrap, "level": CI_LEVEL, "seed": self.bootstrap_seed}}

    def _row(self, dataset: str, kind: str, stage: str, keys: list[list[str]], outcomes, metas) -> dict:
        panel_names = [n for n, _ in self.panels[dataset]]
        per_seed = {name: [] for name in SCORES}
        boots = {name: [] for name in SCORES}
        by_panel = {name: {r: [] for r in ROLES} for name in panel_names}
        units, layers = [], set()
        for k, seed_keys in enumerate(keys):
            t = outcomes[k]
            pred = torch.cat([t[f"{key}/pred"].long() for key in seed_keys], dim=2)      # [P, 4, S*T]
            y = torch.cat([t[f"{key}/y"].long() for key in seed_keys])                    # [S*T]
            valid = torch.cat([t[f"{key}/valid"].bool() for key in seed_keys])            # [S*T]
            act = torch.cat([t[f"{key}/act_sim"] for key in seed_keys], dim=1)            # [3, S*T]
            inp = torch.cat([t[f"{key}/input_sim"] for key in seed_keys], dim=1)          # [3, S*T]
            layers.update(metas[k]["jobs"][key]["layer"] for key in seed_keys)
            correct = {role: (pred[:, j, valid] == y[valid]) for j, role in enumerate(ROLES)}  # [P, |U_k|]
            n = int(valid.sum())
            units.append(n)
            draw = stable_seed(self.bootstrap_seed, "reverse", dataset, kind, stage, k)
            w = unit_weights(max(n, 1), self.num_bootstrap, draw)
            point = panel_accuracies(correct, torch.ones(1, max(n, 1), dtype=torch.float64)) if n else None
            boot = panel_accuracies(correct, w) if n else None
            for role, name in zip(ROLES, ("panel_clean_acc", "panel_metamer_acc", "panel_near_acc", "panel_far_acc")):
                per_seed[name].append(float(point[role][0]) if n else float("nan"))
                boots[name].append(boot[role] if n else torch.full((self.num_bootstrap,), float("nan")))
            per_seed["recognisability"].append(float(recognisability(*(per_seed[f"panel_{r}_acc"][-1]
                                                                       for r in ("clean", "metamer", "far")))))
            boots["recognisability"].append(recognisability(boots["panel_clean_acc"][-1],
                                                            boots["panel_metamer_acc"][-1], boots["panel_far_acc"][-1]))
            # consistency: all test nodes (x metamer seeds), the three variants pooled; a unit's draws weigh its three
            num = y.numel()
            wc = unit_weights(num, self.num_bootstrap, stable_seed(draw, "consistency"))
            x_obs, y_obs = inp.reshape(-1), act.reshape(-1)
            per_seed["consistency"].append(float(consistency(x_obs, y_obs, torch.ones(1, 3 * num, dtype=torch.float64))[0]))
            boots["consistency"].append(consistency(x_obs, y_obs, wc.repeat(1, 3)))
            per_seed["metamer_validity"].append(float(valid.double().mean()))
            boots["metamer_validity"].append((wc @ valid.double()) / num)
            for p, name in enumerate(panel_names):
                for role in ROLES:
                    by_panel[name][role].append(float(correct[role][p].double().mean()) if n else float("nan"))
        draws = seed_draws(len(keys), self.num_bootstrap, stable_seed(self.bootstrap_seed, "reverse-seeds", dataset, kind, stage))
        # Scores on valid units need MIN_UNITS of them for a CI; consistency and validity use every test node.
        small = min(units) < MIN_UNITS
        all_units = min(outcomes[k][f"{seed_keys[0]}/y"].numel() for k, seed_keys in enumerate(keys))
        scores = {}
        for name in SCORES:
            matched = name not in ("consistency", "metamer_validity")
            interval = summarize(torch.tensor(per_seed[name], dtype=torch.float64),
                                 resample_seeds(torch.stack(boots[name], 1), draws),
                                 with_ci=not small if matched else all_units >= MIN_UNITS)
            scores[name] = interval.to_dict(DIGITS)
        panel_rows = []
        for name in panel_names:
            accs = {role: torch.tensor(v, dtype=torch.float64) for role, v in by_panel[name].items()}
            rec = recognisability(accs["original"], accs["metamer"], accs["far"])
            panel_rows.append({"reference_model": name,
                               **{f"{role if role != 'original' else 'clean'}_acc": _round(float(torch.nanmean(v)))
                                  for role, v in accs.items()},
                               "recognisability": _round(float(torch.nanmean(rec)))})
        if len(layers) != 1:
            raise UserError(f"{dataset} {kind} {stage}: the model seeds put this stage at different layers "
                            f"{sorted(layers)}; one submission is one architecture")
        return {"dataset": dataset, "kind": kind, "stage": stage, "layer": layers.pop(),
                "num_units": units, "small_sample": small, "scores": scores, "by_panel": panel_rows,
                "metamers": [{"seed": metas[k]["jobs"][key]["seed"],
                              **{f: metas[k]["jobs"][key][f] for f in ("iterations", "best_iteration", "status")},
                              "rel_loss": _round(metas[k]["jobs"][key]["rel_loss"])}
                             for k, seed_keys in enumerate(keys) for key in seed_keys]}
