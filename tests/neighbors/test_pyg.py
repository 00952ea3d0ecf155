"""The engine inside ordinary PyG pipelines."""

import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn.models import SchNet

from sparse_universe import RadiusGraph, RadiusInteractionGraph, radius_graph


def _molecules(count, generator):
    graphs = []
    for k in range(count):
        n = 5 + k
        pos = torch.rand(n, 3, generator=generator) * 3
        graphs.append(Data(pos=pos, z=torch.randint(1, 10, (n,), generator=generator)))
    return graphs


def test_transform_on_each_graph_and_on_a_batch():
    g = torch.Generator().manual_seed(0)
    graphs = _molecules(6, g)
    transform = RadiusGraph(r=1.2)
    for data in graphs:
        out = transform(data.clone())
        assert torch.equal(out.edge_index, radius_graph(data.pos, 1.2))
    batch = next(iter(DataLoader(graphs, batch_size=6)))
    batched = transform(batch.clone())
    assert torch.equal(batched.edge_index, radius_graph(batch.pos, 1.2, batch.batch))
    # Example boundaries are respected.
    assert bool((batch.batch[batched.edge_index[0]] == batch.batch[batched.edge_index[1]]).all())
    assert "RadiusGraph(r=1.2" in repr(transform)


def test_schnet_with_injected_interaction_graph_trains():
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    graphs = _molecules(8, g)
    for data in graphs:
        data.y = torch.tensor([float(data.num_nodes)])
    model = SchNet(hidden_channels=16, num_filters=16, num_interactions=2, cutoff=1.5,
                   interaction_graph=RadiusInteractionGraph(cutoff=1.5))
    loader = DataLoader(graphs, batch_size=4)
    batch = next(iter(loader))
    # Same edges as the engine gives directly; distances carry gradients to pos.
    pos = batch.pos.clone().requires_grad_()
    edge_index, weight = model.interaction_graph(pos, batch.batch)
    assert torch.equal(edge_index, radius_graph(batch.pos, 1.5, batch.batch))
    energy = model(batch.z, pos, batch.batch).sum()
    (force,) = torch.autograd.grad(-energy, pos)
    assert force.shape == pos.shape and torch.isfinite(force).all()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        for b in loader:
            opt.zero_grad()
            loss = ((model(b.z, b.pos, b.batch).squeeze(-1) - b.y) ** 2).mean()
            loss.backward()
            opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
