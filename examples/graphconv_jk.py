"""A GNN that is not in the zoo, from plain PyG to a submission: GraphConv + GELU + jumping knowledge.

    python examples/graphconv_jk.py            # 3 seeds x Cora, CiteSeer, Photo, MUTAG; writes submissions/graphconv-jk
    metamer-bench validate submissions/graphconv-jk && metamer-bench evaluate submissions/graphconv-jk

The model's ``forward(x, edge_index, edge_weight=None, batch=None)`` returns the logits, then the
activations of the stages the card declares (here ``conv1``, ``conv2``).
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GraphConv, JumpingKnowledge, global_mean_pool

from custom_training import num_graphs, submit


class GraphConvJK(nn.Module):
    def __init__(self, d, hidden=16):
        super().__init__()
        self.graph = d.task == "graph"
        aggr = "add" if self.graph else "mean"  # sums count atoms on molecules; means tame high degrees on Photo
        self.embed = nn.Linear(d.num_features, hidden)  # project first: GraphConv gathers its input over every edge
        self.conv1, self.conv2 = GraphConv(hidden, hidden, aggr=aggr), GraphConv(hidden, hidden, aggr=aggr)
        self.jk, self.head = JumpingKnowledge("cat"), nn.Linear(2 * hidden, d.num_classes)

    def forward(self, x, edge_index, edge_weight=None, batch=None):
        x = self.embed(F.dropout(x, 0.5, self.training))
        h1 = F.gelu(self.conv1(x, edge_index, edge_weight))
        h2 = F.gelu(self.conv2(F.dropout(h1, 0.5, self.training), edge_index, edge_weight))
        h = self.jk([h1, h2])
        if self.graph:
            h = global_mean_pool(h, batch, num_graphs(batch))
        return self.head(F.dropout(h, 0.5, self.training)), h1, h2


if __name__ == "__main__":
    torch.set_num_threads(1)
    submit("graphconv-jk", GraphConvJK, "GraphConv + GELU + jumping knowledge (plain PyG)", ["conv1", "conv2"],
           "examples/graphconv_jk.py: linear input projection, 2 GraphConv (hidden 16; mean aggregation on node "
           "tasks, sum on graph tasks), GELU, JK cat, dropout 0.5, mean pooling on graph tasks; Adam lr 0.01 wd "
           "5e-4, 100 epochs (200 on graph tasks, batches of 32), best validation epoch, seeds 0-2")
