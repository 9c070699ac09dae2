import shutil
import stat

import pytest
import torch

from benchmark.errors import UserError
from benchmark.graphs import REGISTRY, SPLIT_DIR, _seeded_graph_split, _seeded_node_split, dataset_names, load_dataset
from benchmark.files import read_json


def test_registry_lists_required_sets():
    assert {"Cora", "CiteSeer", "Photo", "Actor", "Cornell", "Texas", "Wisconsin"} <= set(dataset_names("node"))
    assert {"MUTAG", "PROTEINS", "ENZYMES", "NCI1"} <= set(dataset_names("graph"))


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UserError) as err:
        load_dataset("Coraa")
    assert "Coraa" in str(err.value) and "CiteSeer" in str(err.value) and "MUTAG" in str(err.value)


def test_public_planetoid_splits(cora, citeseer):
    assert {k: len(v) for k, v in cora.split.items()} == {"train": 140, "val": 500, "test": 1000}
    assert {k: len(v) for k, v in citeseer.split.items()} == {"train": 120, "val": 500, "test": 1000}
    assert cora.data.num_nodes == 2708 and cora.num_features == 1433 and cora.num_classes == 7
    assert cora.binary_features
    parts = [set(v.tolist()) for v in cora.split.values()]
    assert not (parts[0] & parts[1]) and not (parts[1] & parts[2]) and not (parts[0] & parts[2])


def test_missing_raw_files_name_the_paths_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("METAMER_BENCH_CACHE", str(tmp_path / "cache"))  # nothing cached either
    with pytest.raises(UserError) as err:
        load_dataset("CiteSeer", root=tmp_path / "empty")
    message = str(err.value)
    assert str(tmp_path / "empty" / "CiteSeer" / "raw") in message and "download" in message


def test_read_only_mirror_is_never_written(tmp_path, monkeypatch, cora):
    from benchmark.graphs import data_root

    mirror = tmp_path / "mirror" / "Cora" / "raw"
    shutil.copytree(data_root() / "Cora" / "raw", mirror)
    for path in [mirror, *mirror.iterdir()]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    monkeypatch.setenv("METAMER_BENCH_CACHE", str(tmp_path / "cache"))
    before = sorted(p.name for p in (tmp_path / "mirror").rglob("*"))
    loaded = load_dataset("Cora", root=tmp_path / "mirror")
    assert sorted(p.name for p in (tmp_path / "mirror").rglob("*")) == before
    assert torch.equal(loaded.data.x, cora.data.x) and torch.equal(loaded.data.edge_index, cora.data.edge_index)


@pytest.mark.parametrize("name", [n for n, s in REGISTRY.items() if s.split == "seeded"])
def test_shipped_seeded_splits_are_the_seed_zero_splits(name):
    """The split files in the package are exactly what seed 0 gives on the dataset's labels
    (recomputed here), and partition the items."""
    import numpy as np

    from conftest import load_or_skip

    stored = read_json(SPLIT_DIR / f"{name}.json")
    assert stored["seed"] == 0
    parts = stored["split"]
    items = sorted(parts["train"] + parts["val"] + parts["test"])
    assert items == list(range(stored["num_items"]))
    dataset = load_or_skip(name)
    if dataset.task == "node":
        recomputed = _seeded_node_split(dataset.graphs[0].y.numpy(), 0)
    else:
        # The registry's fractions (files older than the "fractions" field were made with the default ones).
        fractions = REGISTRY[name].fractions
        assert tuple(stored.get("fractions", fractions)) == fractions
        recomputed = _seeded_graph_split(np.array([int(g.y) for g in dataset.graphs]), 0, fractions)
    assert recomputed == parts


def test_seeded_splits_are_stratified_and_deterministic():
    import numpy as np

    labels = np.repeat(np.arange(4), 60)
    a, b = _seeded_node_split(labels, 0), _seeded_node_split(labels, 0)
    assert a == b and len(a["train"]) == 80 and len(a["val"]) == 120
    assert all(np.bincount(labels[a["train"]]) == 20)
    g = _seeded_graph_split(labels, 0)
    assert len(g["train"]) == 192 and len(g["val"]) == 24 and len(g["test"]) == 24


def test_graph_dataset_loads_with_split(mutag):
    assert mutag.task == "graph" and len(mutag.graphs) == 188 and mutag.num_classes == 2
    assert len(mutag.split["train"]) + len(mutag.split["val"]) + len(mutag.split["test"]) == 188
    with pytest.raises(UserError, match="graph-classification"):
        mutag.data
