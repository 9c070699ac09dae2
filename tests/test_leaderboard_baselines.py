"""Baseline entries: the list covers the zoo and the mitigations; checked-in cards pass intake."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from benchmark.models import model_names

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("train_baselines", REPO / "scripts" / "train_baselines.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_entries_cover_every_architecture_and_every_mitigation_combination():
    entries = {e.name: e for e in _script().baseline_entries()}
    assert {f"{arch}-baseline" for arch in model_names()} <= set(entries)
    combos = {"gcn-elu", "gcn-residual", "gcn-adv", "gcn-elu-residual", "gcn-elu-adv", "gcn-residual-adv",
              "gcn-elu-residual-adv"}
    assert combos <= set(entries) and len(entries) == len(model_names()) + len(combos)
    full = entries["gcn-elu-residual-adv"]
    assert full.overrides == {"activation": "elu", "residual": True} and full.adversarial
    assert not entries["gcn-elu-residual"].adversarial


def _checked_in() -> list[Path]:
    return sorted(p.parent for p in (REPO / "submissions").glob("*/submission.json"))


def _checked_in_registry() -> list[Path]:
    """The checked-in baselines: registry cards (exported-program entries, issue 14.5, have no recipe here)."""
    import json

    return [f for f in _checked_in() if "format" not in json.loads((f / "submission.json").read_text())]


@pytest.mark.parametrize("folder", _checked_in(), ids=lambda p: p.name)
def test_checked_in_baseline_cards_pass_intake(folder):
    """Every intake check, strict loading of each seed's weights into the declared config included
    (a card whose weights came from an older version of an architecture fails here)."""
    from benchmark.submissions import validate_submission

    checked = validate_submission(folder)
    assert len(checked.submission.seeds) >= 3
    assert all(len(models) == len(checked.submission.seeds) for models in checked.models.values())


@pytest.mark.parametrize("folder", _checked_in_registry(), ids=lambda p: p.name)
def test_checked_in_baselines_use_todays_registry_defaults(folder):
    """A registry default that changes (GIN's layer norm) must come with retrained baselines."""
    from benchmark.files import read_json

    script = _script()
    entry = {e.name: e for e in script.baseline_entries()}[folder.name]
    card = read_json(folder / "submission.json")
    for dataset, block in card["datasets"].items():
        assert {**card["architecture"]["config"], **block.get("config", {})} == script.entry_config(entry, dataset), dataset


def test_a_run_staged_under_an_older_default_is_not_finished(tmp_path, monkeypatch):
    from benchmark.files import atomic_write_json

    script = _script()
    monkeypatch.setattr(script, "STAGING", tmp_path)
    monkeypatch.setattr(script, "SUBMISSIONS", tmp_path / "none")
    entry = {e.name: e for e in script.baseline_entries()}["gin-baseline"]
    current = {**script.entry_config(entry, "Cora"), "arch": "gin", "in_channels": 1433, "out_channels": 7, "task": "node"}
    card = script.stage_dir(entry, "Cora", 0) / "card.json"
    atomic_write_json(card, {"config": {**current, "norm": "none"}})
    assert not script.finished(entry, "Cora", 0)
    atomic_write_json(card, {"config": current})
    assert script.finished(entry, "Cora", 0)


def test_packaging_checked_in_runs_rewrites_the_same_card(tmp_path, monkeypatch):
    """package() writes through benchmark.submissions.write_submission: from the checked-in runs of
    an entry it gives back the checked-in card byte for byte, and the folder passes intake."""
    import shutil

    from benchmark.submissions import validate_submission

    script = _script()
    name = "sgc-baseline"
    shutil.copytree(REPO / "submissions" / name, tmp_path / "submissions" / name)
    monkeypatch.setattr(script, "STAGING", tmp_path / "staging")
    monkeypatch.setattr(script, "SUBMISSIONS", tmp_path / "submissions")
    entry = {e.name: e for e in script.baseline_entries()}[name]
    card = tmp_path / "submissions" / name / "submission.json"
    before = card.read_bytes()
    datasets = sorted(script.read_json(card)["datasets"])
    folder, missing = script.package(entry, datasets, [0, 1, 2])  # every run found checked in, hash-checked
    assert missing == [] and card.read_bytes() == before
    validate_submission(folder)
