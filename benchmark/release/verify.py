"""``verify_release``: hashes, schemas, the data checked against the base datasets, and the recorded
validity recomputed from the checkpoints.

A release whose files were edited and re-hashed passes the hash check; what it cannot fake is the
base datasets this package loads itself (``benchmark.graphs.load_dataset``, from the data root).
So every base graph (``data/bases/<dataset>.parquet``) must equal the one
:func:`benchmark.release.build.base_records` derives from the dataset (features, edges, labels,
graph indices), and in every set the originals must be those base graphs with the dataset's labels
and split (node tasks: target = the test nodes; graph tasks: the originals are the test graphs),
and every metamer and twin must keep its original's labels (and target nodes). Each mismatch is
one problem naming the file or set, the record and the field. Cost on ``data_cards/v1``: see
docs/security.md (measured: small next to the validity recomputation).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from benchmark.checkpoints import load_checkpoint
from benchmark.errors import UserError
from benchmark.release.card import read_card
from benchmark.release.locate import resolve_release
from benchmark.release.manifest import check_files, release_files, MANIFEST_NAME
from benchmark.release.opened import Release, VerificationMode

# A recomputed validity decision may flip only where the Pearson r sits within float noise of the
# threshold; more than this share of flipped target nodes (or graphs) fails the set.
MAX_FLIP_RATE = 0.005
REL_LOSS_TOLERANCE = 1e-3  # relative


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    checked_files: int = 0
    checked_sets: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_set(frozen_set, model, report: VerifyReport) -> None:
    from benchmark.metamers.validity import (StageCriterion, distance_rows, graph_stage_outputs, graph_validity,
                                             pearson_rows, validity_from_activations)

    metamers = frozen_set.by_role("metamer")
    stats0 = frozen_set.originals[0].stats
    criterion = stats0.get("validity_criterion", "random_pair")  # release v1 predates the field
    stage = frozen_set.layer
    if frozen_set.task == "node":
        original = frozen_set.originals[0]
        threshold = stats0["null_threshold"]
        target = original.target
        with torch.no_grad():
            h = model.stage(original.x, original.edge_index, stage=stage)
            pred = model(original.x, original.edge_index).argmax(-1)
            fitted = (StageCriterion.fit(criterion, h, stats0.get("validity_quantile", 0.999))
                      if criterion != "random_pair" else None)
            for record in metamers:
                h2 = model.stage(record.x, record.edge_index, stage=stage)
                pred2 = model(record.x, record.edge_index).argmax(-1)
                if fitted is None:
                    check = validity_from_activations(h, h2, pred, pred2, threshold)
                else:
                    check = fitted.check(h, h2, pred, pred2, h_population=h)
                recomputed = check.mask & target
                flips = int((recomputed != record.valid).sum())
                if flips > MAX_FLIP_RATE * int(target.sum()):
                    report.problems.append(f"{frozen_set.key}: {record.id}: recomputed validity differs on {flips} "
                                           f"of {int(target.sum())} target nodes")
                stored = record.stats.get("rel_loss_all")
                loss = float(((h2 - h) ** 2).sum() / (h**2).sum().clamp(min=1e-12))
                if stored is not None and abs(loss - stored) > REL_LOSS_TOLERANCE * max(stored, 1e-6) + 1e-7:
                    report.problems.append(f"{frozen_set.key}: {record.id}: relative loss {loss:.6g} != recorded {stored:.6g}")
    else:
        originals = {o.id: o for o in frozen_set.originals}
        threshold = stats0["null_threshold"]
        if criterion not in ("random_pair", "centred", "distance"):
            report.problems.append(f"{frozen_set.key}: validity criterion {criterion!r} needs the whole dataset; "
                                   f"verify recomputes 'random_pair', 'centred' and 'distance' sets only")
            report.checked_sets += 1
            return
        for seed in frozen_set.seeds:
            group = [m for m in metamers if m.seed == seed]
            parents = [originals[m.parent_id].to_data() for m in group]
            if criterion == "random_pair":
                mask = graph_validity(model, parents, [m.to_data() for m in group], stage, threshold=threshold).mask
            else:
                h, pred = graph_stage_outputs(model, parents, stage)
                h2, pred2 = graph_stage_outputs(model, [m.to_data() for m in group], stage)
                if criterion == "distance":  # the threshold is all it needs
                    mask = (pred == pred2) & (distance_rows(h, h2) < threshold)
                else:  # centred on the dataset's mean activation, which the originals' stats carry
                    centre = torch.tensor(stats0["centre"]).view(1, -1)
                    mask = (pred == pred2) & (pearson_rows(h - centre, h2 - centre) > threshold)
            stored = torch.cat([m.valid for m in group])
            flips = int((mask != stored).sum())
            if flips > MAX_FLIP_RATE * len(group):
                report.problems.append(f"{frozen_set.key}: seed {seed}: recomputed validity differs on {flips} of "
                                       f"{len(group)} graphs")
    report.checked_sets += 1


def _differs(a: torch.Tensor, b: torch.Tensor) -> str | None:
    """How ``a`` differs from ``b`` (shape, or the number of differing entries), or None when equal."""
    if a.shape != b.shape:
        return f"shape {tuple(a.shape)} instead of {tuple(b.shape)}"
    if torch.equal(a, b):
        return None
    return f"{int((a != b).sum())} of {a.numel()} entries differ"


def _same_edges(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same multiset of directed edges, in any order."""
    if a.shape != b.shape:
        return False
    if torch.equal(a, b):
        return True
    key = lambda e: torch.sort(e[0] * (int(max(a.max(), b.max())) + 1) + e[1]).values  # noqa: E731
    return bool(torch.equal(key(a), key(b)))


def _check_bases(root: Path, manifest: dict, bad: set[str], report: VerifyReport) -> dict:
    """Each base file against the base records derived from its dataset; returns ``{dataset: {graph_index: record}}``
    of the expected records (for the set checks), for every dataset that could be loaded."""
    from benchmark.graphs import load_dataset
    from benchmark.release.build import base_records
    from benchmark.release.shards import read_records

    expected: dict[str, dict] = {}
    for name, rel in sorted(manifest["bases"].items()):
        try:
            dataset = load_dataset(name)
        except UserError as err:
            report.problems.append(f"{rel}: cannot be checked against the {name} dataset: {err}")
            continue
        want = {r.graph_index: r for r in base_records(dataset)}
        expected[name] = {"records": want, "task": dataset.task,
                          "test": dataset.index("test"), "num_nodes": dataset.data.num_nodes if dataset.task == "node" else None}
        if rel in bad:
            continue  # reported by the hash check
        try:
            stored = read_records(root / rel)
        except UserError as err:
            report.problems.append(f"{rel}: {err}")
            continue
        got = {r.graph_index: r for r in stored}
        if sorted(got) != sorted(want):
            report.problems.append(f"{rel}: graph_index: holds graphs {sorted(got)[:8]}..., the {name} dataset's base "
                                   f"is {len(want)} graph(s) {sorted(want)[:8]}... (test split for graph tasks)")
            continue
        for index in sorted(want):
            a, b = got[index], want[index]
            for field_name in ("x", "y"):
                how = _differs(getattr(a, field_name), getattr(b, field_name))
                if how:
                    report.problems.append(f"{rel}: {a.id}: {field_name} differs from the {name} dataset's ({how})")
            if not _same_edges(a.edge_index, b.edge_index):
                report.problems.append(f"{rel}: {a.id}: edge_index differs from the {name} dataset's graph")
    return expected


def _check_set_data(frozen_set, expected: dict, report: VerifyReport) -> None:
    """Originals are the dataset's base graphs with its labels and split; variants keep their original's labels."""
    key, name = frozen_set.key, frozen_set.dataset
    want = expected["records"]
    problems = []
    if frozen_set.task == "node":
        if len(frozen_set.originals) != 1:
            problems.append(f"{key}: {len(frozen_set.originals)} originals, a node task has 1")
        test_mask = torch.zeros(expected["num_nodes"], dtype=torch.bool)
        test_mask[expected["test"]] = True
    else:
        indices = sorted(o.graph_index for o in frozen_set.originals)
        if indices != sorted(expected["test"].tolist()):
            problems.append(f"{key}: graph_index: the originals are not the {name} test split "
                            f"({len(indices)} graphs, the split has {len(expected['test'])})")
    for original in frozen_set.originals:
        base = want.get(original.graph_index)
        if base is None:
            problems.append(f"{key}: {original.id}: graph_index {original.graph_index} is not a {name} base graph")
            continue
        for field_name in ("x", "y"):
            how = _differs(getattr(original, field_name), getattr(base, field_name))
            if how:
                problems.append(f"{key}: {original.id}: {field_name} differs from the {name} dataset's ({how})")
        if not _same_edges(original.edge_index, base.edge_index):
            problems.append(f"{key}: {original.id}: edge_index differs from the {name} dataset's graph")
        if frozen_set.task == "node":
            how = _differs(original.target, test_mask)
            if how:
                problems.append(f"{key}: {original.id}: target_mask is not the {name} test split ({how})")
    originals = {o.id: o for o in frozen_set.originals}
    for record in frozen_set.variants:
        parent = originals.get(record.parent_id)
        if parent is None:
            problems.append(f"{key}: {record.id}: parent_id {record.parent_id!r} is not an original of the set")
            continue
        how = _differs(record.y, parent.y)
        if how:
            problems.append(f"{key}: {record.id}: y differs from its original's labels ({how})")
        if frozen_set.task == "node" and (how := _differs(record.target, parent.target)):
            problems.append(f"{key}: {record.id}: target_mask differs from its original's ({how})")
    report.problems += problems


def verify_release(release: str | os.PathLike | None = None, progress: bool = True) -> VerifyReport:
    """Every check of ``metamer-bench verify``; never raises for a failed check, lists it instead."""
    root = resolve_release(release)
    report = VerifyReport()
    try:
        # Opened once, without its own checks: the hash check below lists every bad file instead of
        # stopping at the first, and each set is loaded through this one object.
        release = Release.open(root, VerificationMode.NO_CHECKS)
    except UserError as err:
        report.problems.append(str(err))
        return report
    manifest = release.manifest
    report.problems += check_files(root, manifest)
    unlisted = sorted(set(release_files(root)) - set(manifest["files"]))
    report.problems += [f"{rel}: present but not listed in {MANIFEST_NAME}" for rel in unlisted]
    report.checked_files = len(manifest["files"])
    try:
        read_card(root)
    except UserError as err:
        report.problems.append(str(err))
    bad = {p.split(":")[0] for p in report.problems}
    expected = _check_bases(root, manifest, bad, report)
    models = {}
    for entry in tqdm(manifest["sets"], desc="verify", disable=not progress):
        needed = {entry["shard"], manifest["bases"][entry["dataset"]]}
        ckpt = entry.get("checkpoint")
        if ckpt:
            needed |= {f"{ckpt}/model.safetensors", f"{ckpt}/card.json"}
        if needed & bad:
            report.problems.append(f"{entry['key']}: not recomputed (its files failed the hash check)")
            continue
        try:
            (frozen_set,) = release.load_sets(entry["dataset"], entry["reference_model"], entry["kind"],
                                              entry["layer"])
            if entry["dataset"] in expected:
                _check_set_data(frozen_set, expected[entry["dataset"]], report)
            if ckpt not in models:
                models[ckpt] = load_checkpoint(root / ckpt)[0]
            _check_set(frozen_set, models[ckpt], report)
        except UserError as err:
            report.problems.append(f"{entry['key']}: {err}")
    return report
