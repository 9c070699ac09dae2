"""GATv2 with edge dropout (plain PyG), submitted as exported programs.

    python examples/gatv2_edgedrop.py          # writes submissions/gatv2-edgedrop

Edge dropout (``torch_geometric.utils.dropout_edge``) runs only in training: the exported program is
traced in eval mode, so it holds no random operator (those are outside ``ALLOWED_OPS``).
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATv2Conv, global_mean_pool
from torch_geometric.utils import dropout_edge

from custom_training import num_graphs, submit


class GATv2EdgeDrop(nn.Module):
    def __init__(self, d, hidden=8, heads=2, edge_p=0.2):
        super().__init__()
        self.graph, self.edge_p = d.task == "graph", edge_p
        self.conv1 = GATv2Conv(d.num_features, hidden, heads=heads, share_weights=True)
        self.conv2 = GATv2Conv(hidden * heads, hidden, heads=1, share_weights=True)
        self.head = nn.Linear(hidden, d.num_classes)

    def forward(self, x, edge_index, edge_weight=None, batch=None):
        if self.training:
            edge_index, _ = dropout_edge(edge_index, p=self.edge_p)
        h1 = F.elu(self.conv1(F.dropout(x, 0.5, self.training), edge_index))
        h2 = F.elu(self.conv2(F.dropout(h1, 0.5, self.training), edge_index))
        h = global_mean_pool(h2, batch, num_graphs(batch)) if self.graph else h2
        return self.head(h), h1, h2


if __name__ == "__main__":
    torch.set_num_threads(1)
    submit("gatv2-edgedrop", GATv2EdgeDrop, "GATv2 with edge dropout (plain PyG)", ["conv1", "conv2"],
           "examples/gatv2_edgedrop.py: 2 GATv2Conv (shared weights, 2 heads x 8 then 1 x 8), ELU, feature dropout "
           "0.5, edge dropout 0.2 in training, linear head, mean pooling on graph tasks; Adam lr 0.01 wd 5e-4, "
           "100 epochs (200 on graph tasks, batches of 32), best validation epoch, seeds 0-2")
