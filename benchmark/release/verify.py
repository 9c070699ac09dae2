"""``verify_release``: hashes, schemas, and the recorded validity recomputed from the checkpoints."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from benchmark.checkpoints import load_checkpoint
from benchmark.errors import UserError
from benchmark.release.card import read_card
from benchmark.release.loader import load_frozen_sets, resolve_release
from benchmark.release.manifest import check_files, read_manifest, release_files, MANIFEST_NAME

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
    from benchmark.metamers.validity import StageCriterion, graph_stage_outputs, graph_validity, pearson_rows, validity_from_activations

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
        if criterion not in ("random_pair", "centred"):
            report.problems.append(f"{frozen_set.key}: validity criterion {criterion!r} needs the whole dataset; "
                                   f"verify recomputes 'random_pair' and 'centred' sets only")
            report.checked_sets += 1
            return
        for seed in frozen_set.seeds:
            group = [m for m in metamers if m.seed == seed]
            parents = [originals[m.parent_id].to_data() for m in group]
            if criterion == "random_pair":
                mask = graph_validity(model, parents, [m.to_data() for m in group], stage, threshold=threshold).mask
            else:  # centred on the dataset's mean activation, which the originals' stats carry
                centre = torch.tensor(stats0["centre"]).view(1, -1)
                h, pred = graph_stage_outputs(model, parents, stage)
                h2, pred2 = graph_stage_outputs(model, [m.to_data() for m in group], stage)
                mask = (pred == pred2) & (pearson_rows(h - centre, h2 - centre) > threshold)
            stored = torch.cat([m.valid for m in group])
            flips = int((mask != stored).sum())
            if flips > MAX_FLIP_RATE * len(group):
                report.problems.append(f"{frozen_set.key}: seed {seed}: recomputed validity differs on {flips} of "
                                       f"{len(group)} graphs")
    report.checked_sets += 1


def verify_release(release: str | os.PathLike | None = None, progress: bool = True) -> VerifyReport:
    """Every check of ``metamer-bench verify``; never raises for a failed check, lists it instead."""
    root = resolve_release(release)
    report = VerifyReport()
    try:
        manifest = read_manifest(root)
    except UserError as err:
        report.problems.append(str(err))
        return report
    report.problems += check_files(root, manifest)
    unlisted = sorted(set(release_files(root)) - set(manifest["files"]))
    report.problems += [f"{rel}: present but not listed in {MANIFEST_NAME}" for rel in unlisted]
    report.checked_files = len(manifest["files"])
    try:
        read_card(root)
    except UserError as err:
        report.problems.append(str(err))
    bad = {p.split(":")[0] for p in report.problems}
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
            (frozen_set,) = load_frozen_sets(root, verify=False, dataset=entry["dataset"],
                                             reference_model=entry["reference_model"], kind=entry["kind"],
                                             layer=entry["layer"])
            if ckpt not in models:
                models[ckpt] = load_checkpoint(root / ckpt)[0]
            _check_set(frozen_set, models[ckpt], report)
        except UserError as err:
            report.problems.append(f"{entry['key']}: {err}")
    return report
