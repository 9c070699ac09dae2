"""The training and submission steps shared by the custom-model examples (plain PyTorch and PyG).

``train`` fits one model on one dataset of the benchmark (its fixed split from ``benchmark.graphs``)
and keeps the epoch with the best validation accuracy; ``submit`` trains every dataset and seed the
release scores and writes an exported-program submission folder with
``benchmark.programs.write_program_submission``. ``num_graphs`` is the one line a graph-task model
needs to be exportable.
"""
import copy

import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from benchmark.graphs import load_dataset
from benchmark.programs import write_program_submission

DATASETS, SEEDS = ("Cora", "CiteSeer", "Photo", "MUTAG"), (0, 1, 2)  # what release v1 scores: every dataset, >= 3 seeds


def num_graphs(batch):
    """The number of graphs in ``batch`` as a checked data-dependent size: ``torch.export`` refuses
    ``int(batch.max())``, which PyG's pooling calls when no size is given."""
    n = batch.max().item() + 1
    torch._check(n >= 1)
    torch._check(n <= batch.size(0))
    return n


def train(make, d, seed, epochs=None):
    """Adam (lr 0.01, wd 5e-4) on the train split for ``epochs`` (default: 100 full-batch epochs on a node
    task, 200 epochs of 32-graph batches on a graph task); keeps the epoch with the best validation accuracy."""
    epochs = epochs or (200 if d.task == "graph" else 100)
    torch.manual_seed(seed)
    model, parts = make(d), {p: d.index(p) for p in ("train", "val")}
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    if d.task == "graph":
        loaders = {p: DataLoader([d.graphs[i] for i in idx.tolist()], batch_size=32, shuffle=p == "train",
                                 generator=torch.Generator().manual_seed(seed)) for p, idx in parts.items()}
    best = (-1.0, None)
    for _ in range(epochs):
        model.train()
        batches = loaders["train"] if d.task == "graph" else [d.data]
        for b in batches:
            opt.zero_grad()
            logits = model(b.x, b.edge_index, batch=b.batch)[0]
            y = b.y if d.task == "graph" else b.y[parts["train"]]
            F.cross_entropy(logits if d.task == "graph" else logits[parts["train"]], y).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            if d.task == "graph":
                hits = sum(int((model(b.x, b.edge_index, batch=b.batch)[0].argmax(-1) == b.y).sum())
                           for b in loaders["val"])
                acc = hits / len(parts["val"])
            else:
                pred = model(d.data.x, d.data.edge_index)[0].argmax(-1)
                acc = float((pred[parts["val"]] == d.data.y[parts["val"]]).float().mean())
        if acc > best[0]:
            best = (acc, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[1])
    return model.eval()


def submit(entry, make, name, stages, recipe):
    """Train ``make(dataset)`` on every dataset and seed, export, write ``submissions/<entry>``."""
    models = {}
    for dataset in DATASETS:
        d = load_dataset(dataset)
        models[dataset] = {seed: train(make, d, seed) for seed in SEEDS}
    card = {"name": name, "authors": ["metamer-bench maintainers"], "paper_url": None, "code_url": None,
            "license": "MIT", "architecture": {"name": entry, "stages": stages}, "seeds": list(SEEDS),
            "training": {"data": "train split of each dataset's public split (benchmark.graphs), no extra data",
                         "recipe": recipe}}
    return write_program_submission(f"submissions/{entry}", card, models)
