"""How-to: use the exact engine in an existing PyG model.

Four ways in, from least to most invasive for the model's code:

1. the transform, for datasets whose graphs are built once;
2. SchNet's ``interaction_graph`` hook, for models that take one;
3. ``patch()``, for models that call ``radius_graph`` inside ``forward``
   (PyG's SchNet, ViSNet, DimeNet, ...): they run unedited;
4. capacity mode, for models compiled with ``torch.compile(fullgraph=True)``.

Run it: ``python docs/howto/pyg.py``.
"""

import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn.models import SchNet
from torch_geometric.utils import scatter

from sparse_universe import (
    RadiusGraph,
    RadiusInteractionGraph,
    radius_graph,
    radius_graph_padded,
)
from sparse_universe.neighbors import compat
from sparse_universe.neighbors.compat import patch

torch.manual_seed(0)
molecules = [
    Data(pos=torch.rand(n, 3) * 4, z=torch.randint(1, 10, (n,)))
    for n in (12, 20, 9, 31)
]

# 1. The transform: a drop-in for torch_geometric.transforms.RadiusGraph,
#    exact and never capped.
transform = RadiusGraph(r=2.0)
graphs = [transform(data.clone()) for data in molecules]
# edge_index concatenated and re-indexed
batch = next(iter(DataLoader(graphs, batch_size=4)))
assert torch.equal(batch.edge_index, radius_graph(batch.pos, 2.0, batch.batch))

# 2. SchNet with the engine as its interaction graph.
model = SchNet(
    hidden_channels=32,
    num_filters=32,
    num_interactions=2,
    cutoff=2.0,
    interaction_graph=RadiusInteractionGraph(cutoff=2.0),
)
pos = batch.pos.clone().requires_grad_()
energy = model(batch.z, pos, batch.batch)  # (4, 1)
# distances carry gradients to positions
(forces,) = torch.autograd.grad(-energy.sum(), pos)
print(
    f"SchNet energies {energy.view(-1).tolist()}, |F| max {forces.abs().max():.3g}"
)

# 3. An unedited model that calls torch_geometric.nn.radius_graph (or
#    torch_cluster's) inside forward.
# its own radius_graph
plain = SchNet(hidden_channels=32, num_filters=32, num_interactions=2, cutoff=2.0)
plain.load_state_dict(model.state_dict(), strict=False)
# torch-cluster's signatures, the engine's answer
with patch():
    same = plain(batch.z, batch.pos, batch.batch)
torch.testing.assert_close(same, energy.detach())
# A call site written for torch_cluster.radius_graph keeps its positional
# arguments (x, r, batch, loop, max_num_neighbors, flow, num_workers):
edge_index = compat.radius_graph(
    batch.pos, 2.0, batch.batch, False, 64, "source_to_target", 1
)
assert torch.equal(edge_index, radius_graph(batch.pos, 2.0, batch.batch))
# The drop-ins keep torch-cluster's signature but never drop a neighbour
# silently: SchNet's default max_num_neighbors=32 raises NeighborOverflowError
# when exceeded; patch(on_overflow="nearest") keeps the nearest instead.


# 4. torch.compile: build the graph inside forward with a fixed capacity.
class Interaction(torch.nn.Module):
    """One inverse-distance message pass over a graph built in forward."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.embed, self.capacity = torch.nn.Embedding(10, 16), capacity

    def forward(self, z, pos, batch):
        # fixed shapes: (2, capacity)
        graph = radius_graph_padded(pos, 2.0, batch, capacity=self.capacity)
        source, target = graph.edge_index
        weight = graph.mask.to(pos.dtype) / (
            (pos[source] - pos[target]).pow(2).sum(-1) + 0.1
        )
        messages = self.embed(z)[source] * weight[:, None]
        return scatter(messages, target, 0, dim_size=pos.size(0), reduce="sum")


layer = Interaction(capacity=8 * batch.num_nodes)
# no graph break: the search is a custom operator
compiled = torch.compile(layer, fullgraph=True)
assert not bool(
    radius_graph_padded(
        batch.pos, 2.0, batch.batch, capacity=layer.capacity
    ).overflow
)
torch.testing.assert_close(
    compiled(batch.z, batch.pos, batch.batch),
    layer(batch.z, batch.pos, batch.batch),
)
print("compiled and eager agree on", batch.num_nodes, "atoms")
