"""A graph-level model with attention pooling (plain PyG), submitted as exported programs.

    python examples/gin_attnpool.py            # writes submissions/gin-attnpool

Two GIN layers; on graph tasks (MUTAG) a gated attention readout (``AttentionalAggregation``: a
softmax over each graph's nodes weights their sum), on node tasks the same encoder with a linear
head (release v1 scores every entry on its node datasets too).
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import AttentionalAggregation, GINConv

from custom_training import num_graphs, submit


def mlp(a, b):
    return nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, b))


class GINAttnPool(nn.Module):
    def __init__(self, d, hidden=16):
        super().__init__()
        self.graph = d.task == "graph"
        self.embed = nn.Linear(d.num_features, hidden)  # project first: GIN sums its input over every edge
        self.conv1, self.conv2 = GINConv(mlp(hidden, hidden)), GINConv(mlp(hidden, hidden))
        gate = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))  # a score per node
        self.pool = AttentionalAggregation(gate_nn=gate)
        self.head = nn.Linear(hidden, d.num_classes)

    def forward(self, x, edge_index, edge_weight=None, batch=None):
        h1 = F.relu(self.conv1(self.embed(F.dropout(x, 0.5, self.training)), edge_index))
        h2 = F.relu(self.conv2(F.dropout(h1, 0.5, self.training), edge_index))
        h = self.pool(h2, batch, dim_size=num_graphs(batch)) if self.graph else h2
        return self.head(F.dropout(h, 0.5, self.training)), h1, h2


if __name__ == "__main__":
    torch.set_num_threads(1)
    submit("gin-attnpool", GINAttnPool, "GIN with attention pooling (plain PyG)", ["conv1", "conv2"],
           "examples/gin_attnpool.py: linear input projection, 2 GINConv (2-layer MLPs, hidden 16), ReLU, dropout "
           "0.5, gated attention pooling on graph tasks, linear head; Adam lr 0.01 wd 5e-4, 100 epochs (200 on graph "
           "tasks, batches of 32), best validation epoch, seeds 0-2")
