"""Base datasets: a registry of node- and graph-classification sets with fixed splits.

Raw files are read from a data root (argument, else ``$METAMER_BENCH_DATA``, else
``~/.cache/metamer-bench/data``) and copied into a writable cache before PyG processes them, so
a read-only mirror is never written to. Sets without a public split get a seeded split that ships
with the package (``benchmark/splits/<name>.json``), so every user gets the same nodes.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from benchmark.errors import UserError, unknown_choice
from benchmark.files import atomic_write_json, read_json

DATA_ENV = "METAMER_BENCH_DATA"
CACHE_ENV = "METAMER_BENCH_CACHE"
SPLIT_DIR = Path(__file__).parent / "splits"


def default_cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "metamer-bench"
    )
    return Path(base)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where raw datasets are read from: ``root``, else ``$METAMER_BENCH_DATA``, else the cache."""
    if root is not None:
        return Path(root)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return default_cache_dir() / "data"


@dataclass(frozen=True)
class DatasetSpec:
    """How to find, load and split one base dataset."""

    name: str
    task: str  # "node" or "graph"
    mirror_dirs: tuple[str, ...]  # folder names under the data root that hold ``raw/``
    raw_files: tuple[str, ...]  # files that must be present in ``raw/``
    build: Callable[[Path, str], object]  # (pyg_root, name) -> PyG dataset
    pyg_raw_subdir: str  # where the PyG class expects ``raw/`` below its root
    split: str  # "public", "geom-gcn" or "seeded"
    citation: str = ""
    license: str = ""
    # Seeded graph splits: (train, val) fractions per class; the rest is the test split. Release v2
    # needs >= 300 test graphs per graph set (bootstrap CIs over 20 MUTAG graphs degenerate).
    fractions: tuple[float, float] = (0.8, 0.1)
    # Datasets without node features (IMDB): every node gets the constant feature 1, so a model
    # can only read the structure.
    constant_features: bool = False


def _planetoid(root: Path, name: str):
    from torch_geometric.datasets import Planetoid

    return Planetoid(str(root), name, split="public")


def _amazon(root: Path, name: str):
    from torch_geometric.datasets import Amazon

    return Amazon(str(root), name)


def _actor(root: Path, name: str):
    from torch_geometric.datasets import Actor

    return Actor(str(root / "Actor"))


def _webkb(root: Path, name: str):
    from torch_geometric.datasets import WebKB

    return WebKB(str(root), name)


def _tu(root: Path, name: str):
    from torch_geometric.datasets import TUDataset

    return TUDataset(str(root), name)


def _geom_gcn_files(prefix: str) -> tuple[str, ...]:
    return ("out1_graph_edges.txt", "out1_node_feature_label.txt", f"{prefix}_split_0.6_0.2_0.npz")


_PLANETOID = "Yang, Cohen, Salakhutdinov. Revisiting Semi-Supervised Learning with Graph Embeddings. ICML 2016; Sen et al. 2008"
_TU = "Morris et al. TUDataset: A collection of benchmark datasets for learning with graphs. 2020"
_GEOM = "Pei et al. Geom-GCN: Geometric Graph Convolutional Networks. ICLR 2020"

REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("Cora", "node", ("Cora", "cora"), tuple(f"ind.cora.{s}" for s in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")),
                    _planetoid, "Cora", "public", _PLANETOID, "research use (LINQS)"),
        DatasetSpec("CiteSeer", "node", ("CiteSeer", "citeseer"), tuple(f"ind.citeseer.{s}" for s in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")),
                    _planetoid, "CiteSeer", "public", _PLANETOID, "research use (LINQS)"),
        DatasetSpec("Photo", "node", ("Photo", "photo", "amazon_photo"), ("amazon_electronics_photo.npz",),
                    _amazon, "Photo", "seeded", "Shchur et al. Pitfalls of Graph Neural Network Evaluation. 2018; McAuley et al. 2015", "MIT (gnn-benchmark)"),
        DatasetSpec("Actor", "node", ("Actor", "actor", "film"), _geom_gcn_files("film"),
                    _actor, "Actor", "geom-gcn", _GEOM + "; Tang et al. 2009", "research use"),
        DatasetSpec("Cornell", "node", ("cornell", "Cornell"), _geom_gcn_files("cornell"),
                    _webkb, "cornell", "geom-gcn", _GEOM + "; CMU WebKB", "research use"),
        DatasetSpec("Texas", "node", ("texas", "Texas"), _geom_gcn_files("texas"),
                    _webkb, "texas", "geom-gcn", _GEOM + "; CMU WebKB", "research use"),
        DatasetSpec("Wisconsin", "node", ("wisconsin", "Wisconsin"), _geom_gcn_files("wisconsin"),
                    _webkb, "wisconsin", "geom-gcn", _GEOM + "; CMU WebKB", "research use"),
        *[
            DatasetSpec(name, "graph", (name,), tuple(f"{name}_{s}.txt" for s in ("A", "graph_indicator", "graph_labels")),
                        _tu, name, "seeded", _TU, "research use (TU Dortmund collection)")
            for name in ("MUTAG", "ENZYMES", "NCI1")  # NCI1's 10% test split already holds 411 graphs
        ],
        DatasetSpec("PROTEINS", "graph", ("PROTEINS",), tuple(f"PROTEINS_{s}.txt" for s in ("A", "graph_indicator", "graph_labels")),
                    _tu, "PROTEINS", "seeded", _TU, "research use (TU Dortmund collection)", fractions=(0.6, 0.1)),
        DatasetSpec("IMDB-BINARY", "graph", ("IMDB-BINARY",), tuple(f"IMDB-BINARY_{s}.txt" for s in ("A", "graph_indicator", "graph_labels")),
                    _tu, "IMDB-BINARY", "seeded", _TU + "; Yanardag and Vishwanathan. Deep Graph Kernels. KDD 2015",
                    "research use (TU Dortmund collection)", fractions=(0.6, 0.1), constant_features=True),
    ]
}


def dataset_names(task: str | None = None) -> list[str]:
    return [name for name, spec in REGISTRY.items() if task in (None, spec.task)]


def get_spec(name: str) -> DatasetSpec:
    if name in REGISTRY:
        return REGISTRY[name]
    for key in REGISTRY:  # accept "cora" for "Cora"; names stay case-insensitive for users
        if key.lower() == name.lower():
            return REGISTRY[key]
    raise unknown_choice("dataset", name, REGISTRY)


@dataclass
class GraphDataset:
    """A loaded base dataset with its fixed split.

    Node tasks hold one graph in ``graphs[0]`` and split *node* indices; graph tasks hold many
    graphs and split *graph* indices. ``x`` is float ``[num_nodes, num_features]``.
    """

    name: str
    task: str
    graphs: Sequence[Data]
    num_features: int
    num_classes: int
    split: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def data(self) -> Data:
        if self.task != "node":
            raise UserError(f"{self.name} is a graph-classification set; use .graphs, not .data")
        return self.graphs[0]

    @property
    def binary_features(self) -> bool:
        xs = [g.x for g in (self.graphs if self.task == "graph" else self.graphs[:1])]
        return all(bool(((x == 0) | (x == 1)).all()) for x in xs)

    def to(self, device: str | torch.device) -> GraphDataset:
        """A copy whose graphs and split indices live on ``device`` (``self`` if already there)."""
        device = torch.device(device)
        if all(g.x.device == device for g in self.graphs):
            return self
        return replace(self, graphs=[g.to(device) for g in self.graphs],
                       split={part: index.to(device) for part, index in self.split.items()})

    def index(self, part: str) -> torch.Tensor:
        if part not in self.split:
            raise unknown_choice("split", part, self.split)
        return self.split[part]


def _find_raw(spec: DatasetSpec, root: Path) -> Path | None:
    for folder in spec.mirror_dirs:
        raw = root / folder / "raw"
        if all((raw / f).is_file() for f in spec.raw_files):
            return raw
    return None


def _stage(spec: DatasetSpec, root: Path, cache: Path, download: bool) -> Path:
    """Copy raw files into the writable cache; returns the PyG root to load from."""
    pyg_root = cache / "pyg"
    target_raw = pyg_root / spec.pyg_raw_subdir / "raw"
    source = _find_raw(spec, root)
    if source is None:
        if all((target_raw / f).is_file() for f in spec.raw_files):
            return pyg_root
        if download:
            return pyg_root  # the PyG class downloads from the canonical source
        searched = "\n  ".join(str(root / d / "raw") for d in spec.mirror_dirs)
        raise UserError(
            f"raw files for {spec.name} not found (need {', '.join(spec.raw_files)}); searched:\n  {searched}\n"
            f"Point --data-root or ${DATA_ENV} at a folder holding {spec.mirror_dirs[0]}/raw, "
            "or pass download=True (--download) to fetch it from the canonical source."
        )
    target_raw.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir()):
        dest = target_raw / item.name
        if item.is_file() and (not dest.exists() or dest.stat().st_size != item.stat().st_size):
            shutil.copyfile(item, dest)  # copyfile: never carries a read-only mode bit along
    return pyg_root


def _seeded_node_split(y: np.ndarray, seed: int, train_per_class: int = 20, val_per_class: int = 30) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        nodes = rng.permutation(np.flatnonzero(y == c))
        train += nodes[:train_per_class].tolist()
        val += nodes[train_per_class : train_per_class + val_per_class].tolist()
    taken = set(train) | set(val)
    test = [i for i in range(len(y)) if i not in taken]
    return {"train": sorted(train), "val": sorted(val), "test": test}


def _seeded_graph_split(y: np.ndarray, seed: int, fractions=(0.8, 0.1)) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in np.unique(y):
        items = rng.permutation(np.flatnonzero(y == c))
        n_train = int(round(fractions[0] * len(items)))
        n_val = int(round(fractions[1] * len(items)))
        parts["train"] += items[:n_train].tolist()
        parts["val"] += items[n_train : n_train + n_val].tolist()
        parts["test"] += items[n_train + n_val :].tolist()
    return {k: sorted(v) for k, v in parts.items()}


SPLIT_SEED = 0


def seeded_split(name: str, labels: np.ndarray, task: str, fractions: tuple[float, float] = (0.8, 0.1)) -> dict[str, torch.Tensor]:
    """The shipped split file for ``name``; created (seed 0, graph tasks: ``fractions``) only if the package lacks it."""
    path = SPLIT_DIR / f"{name}.json"
    if path.exists():
        stored = read_json(path)
        if stored["num_items"] != len(labels):
            raise UserError(f"{path} was made for {stored['num_items']} items, but {name} has {len(labels)}")
        split = stored["split"]
    else:
        if task == "node":
            split = _seeded_node_split(labels, SPLIT_SEED)
            meta = {}
        else:
            split = _seeded_graph_split(labels, SPLIT_SEED, fractions)
            meta = {"fractions": list(fractions)}
        atomic_write_json(path, {"dataset": name, "seed": SPLIT_SEED, **meta, "num_items": len(labels), "split": split})
    return {k: torch.tensor(v, dtype=torch.long) for k, v in split.items()}


def _mask_to_index(mask: torch.Tensor) -> torch.Tensor:
    return mask.nonzero().view(-1)


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = False) -> GraphDataset:
    """Load a registered dataset with its fixed split.

    Args:
        name: a registry name (``dataset_names()``), case-insensitive.
        root: data root holding ``<Name>/raw``; see :func:`data_root`.
        download: let PyG fetch missing raw files from the canonical source.
    """
    spec = get_spec(name)
    root_path = data_root(root)
    cache = default_cache_dir()
    pyg_root = _stage(spec, root_path, cache, download)
    dataset = spec.build(pyg_root, spec.pyg_raw_subdir)
    if spec.task == "node":
        data = dataset[0]
        data.x = data.x.float()
        if spec.split == "public":
            split = {part: _mask_to_index(getattr(data, f"{part}_mask")) for part in ("train", "val", "test")}
        elif spec.split == "geom-gcn":  # the first of Pei et al.'s ten 60/20/20 splits
            split = {part: _mask_to_index(getattr(data, f"{part}_mask")[:, 0]) for part in ("train", "val", "test")}
        else:
            split = seeded_split(spec.name, data.y.numpy(), "node")
        for key in ("train_mask", "val_mask", "test_mask"):
            if key in data:
                del data[key]
        graphs: Sequence[Data] = [data]
        num_classes = int(data.y.max()) + 1
    else:
        graphs = [g for g in dataset]
        for g in graphs:
            g.x = torch.ones(g.num_nodes, 1) if spec.constant_features or g.x is None else g.x.float()
        labels = np.array([int(g.y) for g in graphs])
        split = seeded_split(spec.name, labels, "graph", spec.fractions)
        num_classes = int(labels.max()) + 1
    return GraphDataset(spec.name, spec.task, graphs, int(graphs[0].x.size(1)), num_classes, split)
