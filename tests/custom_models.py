"""A model written in plain PyG, outside the package's zoo (issue 14): what a new user submits.

``SkipGCN``: two GCNConv layers with GELU and a linear skip from the input to the output.
``forward(x, edge_index, edge_weight=None, batch=None)`` returns ``(logits, h1)``: the logits and
the activations of its one declared stage (``conv1``), as the exported-program format asks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GCNConv


class SkipGCN(nn.Module):
    def __init__(self, in_channels: int, hidden: int, out_channels: int, dropout: float = 0.5):
        super().__init__()
        self.conv1 = GCNConv(in_channels, hidden)
        self.conv2 = GCNConv(hidden, out_channels)
        self.skip = nn.Linear(in_channels, out_channels)
        self.dropout = dropout

    def forward(self, x, edge_index, edge_weight=None, batch=None):
        h1 = F.gelu(self.conv1(x, edge_index, edge_weight))
        h = F.dropout(h1, self.dropout, self.training)
        return self.conv2(h, edge_index, edge_weight) + self.skip(x), h1


def train_skipgcn(dataset, seed: int, epochs: int = 100, hidden: int = 32) -> SkipGCN:
    """Full-batch Adam on the train split of a node dataset (``benchmark.graphs.load_dataset``;
    lr 0.01, weight decay 5e-4); returns the model in eval mode."""
    data, train = dataset.data, dataset.split["train"]
    torch.manual_seed(seed)
    model = SkipGCN(dataset.num_features, hidden, dataset.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        logits, _ = model(data.x, data.edge_index)
        F.cross_entropy(logits[train], data.y[train]).backward()
        opt.step()
    return model.eval()
