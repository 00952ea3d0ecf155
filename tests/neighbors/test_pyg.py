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


def _crystals(count, generator):
    """Small triclinic crystals as PyG materials datasets store them: cell (1, 3, 3), pbc (1, 3)."""
    graphs = []
    for k in range(count):
        n = 2 + k
        cell = torch.eye(3, dtype=torch.float64) * (2.0 + 0.3 * k) + 0.3 * torch.rand(3, 3, generator=generator,
                                                                                       dtype=torch.float64)
        pos = torch.rand(n, 3, generator=generator, dtype=torch.float64) @ cell
        pbc = torch.tensor([[True, True, k % 2 == 0]])
        graphs.append(Data(pos=pos, z=torch.randint(1, 10, (n,), generator=generator), cell=cell[None], pbc=pbc))
    return graphs


def test_transform_carries_shifts_of_each_crystal_and_of_a_batch():
    from sparse_universe import edge_vectors

    graphs = _crystals(5, torch.Generator().manual_seed(1))
    transform = RadiusGraph(r=3.0)
    for data in graphs:
        out = transform(data.clone())
        expected = radius_graph(data.pos, 3.0, cell=data.cell, pbc=data.pbc, return_shifts=True)
        assert torch.equal(out.edge_index, expected[0]) and torch.equal(out.edge_shift, expected[1])
    per_graph = [transform(d.clone()) for d in graphs]
    batch = next(iter(DataLoader(per_graph, batch_size=5)))  # edges and shifts concatenated, re-indexed
    again = transform(batch.clone())
    assert torch.equal(again.edge_index, batch.edge_index) and torch.equal(again.edge_shift, batch.edge_shift)
    _, length = edge_vectors(batch.pos, batch.edge_index, shifts=batch.edge_shift, cell=batch.cell, batch=batch.batch)
    assert bool((length <= 3.0).all()) and bool((length > 0).all())


def test_interaction_graph_with_cells_gives_forces():
    graphs = _crystals(3, torch.Generator().manual_seed(2))
    batch = next(iter(DataLoader(graphs, batch_size=3)))
    graph = RadiusInteractionGraph(3.0)
    pos = batch.pos.clone().requires_grad_(True)
    edge_index, weight = graph(pos, batch.batch, batch.cell, batch.pbc)
    expected = radius_graph(batch.pos, 3.0, batch.batch, cell=batch.cell, pbc=batch.pbc)
    assert torch.equal(edge_index, expected)
    (weight ** -2).sum().backward()
    assert pos.grad is not None and bool(torch.isfinite(pos.grad).all())
    fixed = RadiusInteractionGraph(3.0, cell=graphs[0].cell, pbc=graphs[0].pbc)  # one cell for every call
    assert torch.equal(fixed(graphs[0].pos)[0], radius_graph(graphs[0].pos, 3.0, cell=graphs[0].cell,
                                                             pbc=graphs[0].pbc))


def test_pyg_models_that_call_radius_graph_inside_run_unedited_on_the_engine():
    import torch_geometric.nn.models.schnet as schnet_module
    from torch_geometric.nn.models import ViSNet

    from sparse_universe import NeighborOverflowError
    from sparse_universe.neighbors.compat import patch

    g = torch.Generator().manual_seed(3)
    z = torch.randint(1, 10, (40,), generator=g)
    pos = torch.randn(40, 3, generator=g) * 1.5
    batch = torch.arange(40) // 10
    torch.manual_seed(0)
    model = SchNet(hidden_channels=16, num_filters=16, num_interactions=2, cutoff=4.0)  # its own radius_graph
    injected = SchNet(hidden_channels=16, num_filters=16, num_interactions=2, cutoff=4.0,
                      interaction_graph=RadiusInteractionGraph(4.0))
    injected.load_state_dict(model.state_dict())
    original = schnet_module.radius_graph
    with patch():
        assert schnet_module.radius_graph is not original
        torch.testing.assert_close(model(z, pos, batch), injected(z, pos, batch))
        energy, _ = ViSNet(hidden_channels=16, num_layers=2, num_rbf=8, cutoff=4.0)(z, pos, batch)
        assert energy.shape == (4, 1) and bool(torch.isfinite(energy).all())
        crowded = SchNet(hidden_channels=16, cutoff=50.0, max_num_neighbors=5)  # every atom sees 9 others
        try:
            crowded(z, pos, batch)
            raise AssertionError("a cap below the true degree must not truncate silently")
        except NeighborOverflowError as e:
            assert "9 neighbours" in str(e)
    assert schnet_module.radius_graph is original  # restored


def test_torch_cluster_signatures():
    import torch_cluster

    from sparse_universe.neighbors import compat

    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(200, 3, generator=g), torch.rand(50, 3, generator=g)
    bx, by = torch.arange(200) // 100, torch.arange(50) // 25
    ours = compat.radius_graph(x, 0.3, bx, False, None, "source_to_target", 1)
    theirs = torch_cluster.radius_graph(x, 0.3, bx, False, 10_000, "source_to_target", 1)
    assert {tuple(e) for e in ours.t().tolist()} == {tuple(e) for e in theirs.t().tolist()}
    ours = compat.radius(x, y, 0.3, bx, by)
    theirs = torch_cluster.radius(x, y, 0.3, bx, by, max_num_neighbors=10_000)
    assert {tuple(e) for e in ours.t().tolist()} == {tuple(e) for e in theirs.t().tolist()}
