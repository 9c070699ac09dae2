"""Which units a frozen set is scored on, and the matched observations behind every score.

A *unit* is what one prediction is scored on: a test node of a node task's graph (the original's
``target`` nodes) or one test graph of a graph task. Each metamer is grouped with its near and
far twin (same original, same metamer seed) and the three are scored on the same *matched*
units only: where all three are valid targets (unit matching). Clean accuracy is reported on all
units and on the matched ones. A metamer without both twins, or two variants of one role for one
original and seed, is a :class:`UserError` naming the set, the record and the field.

Why a module of its own: what counts as a unit is the part of METRICS.md that scores v2 will
change, and it depends only on the records, never on a model or a results file.
:func:`index_set` runs once per set when an evaluator is built; :func:`set_outcomes` turns one
model's class probabilities into the per-unit outcomes that
:func:`benchmark.metrics.scores.bootstrap_scores` resamples.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.errors import UserError
from benchmark.metrics.scores import VARIANT_ROLES, SetOutcomes, js_distance
from benchmark.records import FrozenSet, GraphRecord


@dataclass
class Triple:
    """One metamer seed of one original: the metamer and its twins, scored on the same positions."""

    records: dict[str, GraphRecord]  # role -> record
    parent: GraphRecord
    positions: Tensor  # [P] node positions (node task) or [0] (graph task) where all three are valid targets
    units: Tensor  # [P] unit index of each position
    labels: Tensor  # [P] the original's labels at those positions
    in_sim: dict[str, Tensor]  # role -> [P] input similarity


@dataclass
class SetIndex:
    """The units of one set: its originals' scored positions and its matched triples."""

    frozen: FrozenSet
    num_units: int
    originals: list[tuple[GraphRecord, Tensor, Tensor]]  # (record, positions, labels)
    triples: list[Triple]


def output_positions(record: GraphRecord, task: str) -> int:
    """Rows of a record's outputs: its nodes (node task) or one (graph task)."""
    return record.num_nodes if task == "node" else 1


def _graph_similarity(record: GraphRecord) -> Tensor:
    """Graph tasks: one similarity per graph, the mean over its nodes where stored per node (NaN left out)."""
    sim = record.similarity.double().view(-1)
    finite = sim[torch.isfinite(sim)]
    return finite.mean() if finite.numel() else torch.tensor(float("nan"), dtype=torch.float64)


def index_set(frozen: FrozenSet) -> SetIndex:
    """Units of one set and its matched observations: per (original, metamer seed) the positions
    where the metamer, its near twin and its far twin are all valid targets (unit matching)."""
    if frozen.task not in ("node", "graph"):
        raise UserError(f"set {frozen.key}: unknown task {frozen.task!r}; valid tasks: graph, node")
    originals, unit_maps, offset = [], {}, 0
    for original in frozen.originals:
        if frozen.task == "node":
            positions = original.target.bool().nonzero().view(-1)
            labels = original.y[positions]
        else:
            positions = torch.zeros(1, dtype=torch.long)
            labels = original.y.view(-1)[:1]
        unit_map = torch.full((output_positions(original, frozen.task),), -1, dtype=torch.long)
        unit_map[positions] = torch.arange(offset, offset + positions.numel())
        offset += positions.numel()
        unit_maps[original.id] = (original, unit_map)
        originals.append((original, positions, labels))
    groups: dict[tuple[str, int], dict[str, GraphRecord]] = {}
    for i, record in enumerate(frozen.variants):
        where = f"set {frozen.key}: variants[{i}] (record {record.id})"
        if record.role not in VARIANT_ROLES:
            raise UserError(f"{where}.role: {record.role!r}; valid variant roles: {', '.join(VARIANT_ROLES)}")
        if record.parent_id not in unit_maps:
            raise UserError(f"{where}.parent_id: {record.parent_id!r} is not an original of this set")
        parent = unit_maps[record.parent_id][0]
        if frozen.task == "node" and record.num_nodes != parent.num_nodes:
            raise UserError(f"{where}.x: node-task variant has {record.num_nodes} nodes, its original {parent.id} "
                            f"{parent.num_nodes}; node metamers keep the node set")
        group = groups.setdefault((record.parent_id, record.seed), {})
        if record.role in group:
            raise UserError(f"{where}.seed: a second {record.role} of original {record.parent_id} with seed "
                            f"{record.seed} (first: {group[record.role].id})")
        group[record.role] = record
    triples = []
    for (parent_id, seed), group in sorted(groups.items()):
        missing = [role for role in VARIANT_ROLES if role not in group]
        if missing:
            raise UserError(f"set {frozen.key}: original {parent_id}, seed {seed}: no {' or '.join(missing)} "
                            f"record; every metamer is scored with both its twins")
        parent, unit_map = unit_maps[parent_id]
        if frozen.task == "node":
            mask = parent.target.bool().clone()
            for record in group.values():
                mask &= record.target.bool() & record.valid.bool()
            positions = mask.nonzero().view(-1)
            labels = parent.y[positions]
            in_sim = {role: group[role].similarity.double()[positions] for role in VARIANT_ROLES}
        else:
            valid = all(bool(group[role].valid.view(-1)[0]) for role in VARIANT_ROLES)
            positions = torch.zeros(1 if valid else 0, dtype=torch.long)
            labels = parent.y.view(-1)[:1].repeat(positions.numel())
            in_sim = {role: _graph_similarity(group[role]).repeat(positions.numel()) for role in VARIANT_ROLES}
        triples.append(Triple(group, parent, positions, unit_map[positions], labels, in_sim))
    return SetIndex(frozen, offset, originals, triples)


def set_outcomes(index: SetIndex, probs: Mapping[str, Tensor], preds: Mapping[str, Tensor]) -> SetOutcomes:
    """Turn per-record class probabilities ``[K, n_outputs, C]`` (and their argmax ``preds``) into a
    :class:`~benchmark.metrics.scores.SetOutcomes` over the set's units."""
    clean = torch.cat([(preds[o.id][:, pos] == labels).double() for o, pos, labels in index.originals], dim=1)
    k = clean.size(0)
    units = [t.units for t in index.triples]
    correct, same, in_sim, out_sim = ({r: [] for r in VARIANT_ROLES} for _ in range(4))
    for t in index.triples:
        parent_pred = preds[t.parent.id][:, t.positions]
        parent_probs = probs[t.parent.id][:, t.positions]
        for role in VARIANT_ROLES:
            record_id = t.records[role].id
            pred = preds[record_id][:, t.positions]
            correct[role].append((pred == t.labels).double())
            same[role].append((pred == parent_pred).double())
            in_sim[role].append(t.in_sim[role])
            out_sim[role].append(1.0 - js_distance(probs[record_id][:, t.positions], parent_probs))

    def cat(parts: list[Tensor]) -> Tensor:
        return torch.cat(parts, dim=1) if parts else torch.zeros((k, 0), dtype=torch.float64)

    return SetOutcomes(
        num_units=index.num_units, clean=clean,
        unit=torch.cat(units).long() if units else torch.zeros(0, dtype=torch.long),
        correct={r: cat(correct[r]) for r in VARIANT_ROLES},
        same={r: cat(same[r]) for r in VARIANT_ROLES},
        in_sim={r: torch.cat(in_sim[r]).double() if in_sim[r] else torch.zeros(0, dtype=torch.float64)
                for r in VARIANT_ROLES},
        out_sim={r: cat(out_sim[r]) for r in VARIANT_ROLES},
    )


def clean_by_dataset(indexes: list[SetIndex], datasets: list[str], preds: Mapping[str, Tensor]) -> dict[str, float | None]:
    """Clean accuracy per dataset over its distinct originals' units, mean over model seeds (unrounded)."""
    out: dict[str, float | None] = {}
    for dataset in datasets:
        seen, hits, total = set(), None, 0
        for index in indexes:
            if index.frozen.dataset != dataset:
                continue
            for original, positions, labels in index.originals:
                if original.id in seen:
                    continue
                seen.add(original.id)
                right = (preds[original.id][:, positions] == labels).double().sum(1)
                hits = right if hits is None else hits + right
                total += positions.numel()
        out[dataset] = float((hits / total).mean()) if total else None
    return out
