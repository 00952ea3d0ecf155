import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import global_mean_pool

from sparse_universe import radius_graph
from sparse_universe.nn import InverseDistanceConv
from sparse_universe.nn.collision_conv import complete_graph


def _cloud(n=40, d=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=dtype) * 2, torch.randn(n, 5, generator=g, dtype=dtype)


def test_matches_the_formula_on_the_complete_graph():
    pos, x = _cloud(12)
    conv = InverseDistanceConv(5, 4, delta=0.1).double()
    out = conv(x, pos, complete_graph(torch.zeros(12, dtype=torch.long)))
    dist = torch.cdist(pos, pos)
    w = 1 / torch.sqrt(dist**2 + 0.1**2)
    w.fill_diagonal_(0)
    assert torch.allclose(out, w @ conv.lin(x), atol=1e-12)
    conv.normalize = True
    assert torch.allclose(conv(x, pos, complete_graph(torch.zeros(12, dtype=torch.long))),
                          (w @ conv.lin(x)) / w.sum(1, keepdim=True), atol=1e-12)


def test_gradcheck():
    pos, x = _cloud(15)
    edge_index = radius_graph(pos, 1.0)
    conv = InverseDistanceConv(5, 3, delta=0.05, normalize=True).double()
    assert torch.autograd.gradcheck(lambda p, h: conv(h, p, edge_index), (pos.requires_grad_(), x.requires_grad_()))


def test_permutation_equivariance_and_translation_invariance():
    pos, x = _cloud(50)
    conv = InverseDistanceConv(5, 4).double()
    out = conv(x, pos, radius_graph(pos, 0.8))
    perm = torch.randperm(50)
    assert torch.allclose(conv(x[perm], pos[perm], radius_graph(pos[perm], 0.8)), out[perm], atol=1e-12)
    shifted = pos + torch.tensor([3.0, -7.0, 1.5], dtype=torch.float64)
    assert torch.allclose(conv(x, shifted, radius_graph(shifted, 0.8)), out, atol=1e-10)


def test_coincident_particles_are_softened_not_infinite():
    pos = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.5, 0.0]], requires_grad=True)
    x = torch.randn(3, 2)
    conv = InverseDistanceConv(2, 2, delta=1e-3)
    out = conv(x, pos, radius_graph(pos, 1.0))
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(pos.grad).all()
    with pytest.raises(ValueError, match="delta"):
        InverseDistanceConv(2, 2, delta=0.0)(x, pos, radius_graph(pos, 1.0))


def test_sparse_adjacency_and_edge_index_agree():
    pos, x = _cloud(30)
    edge_index = radius_graph(pos, 0.9)
    conv = InverseDistanceConv(5, 2).double()
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(edge_index.size(1)), (30, 30))
    assert torch.allclose(conv(x, pos, adj_t), conv(x, pos, edge_index))
    assert torch.allclose(conv(x, pos, adj_t.to_sparse_csr()), conv(x, pos, edge_index))
    with pytest.raises(ValueError, match="'edge_index'"):
        conv(x, pos, edge_index[:1])


def test_inside_an_ordinary_pyg_model_over_a_dataloader_batch():
    g = torch.Generator().manual_seed(3)
    graphs = []
    for k in range(6):
        pos = torch.rand(8 + k, 3, generator=g)
        graphs.append(Data(x=torch.randn(8 + k, 4, generator=g), pos=pos, edge_index=radius_graph(pos, 0.6),
                           y=torch.tensor([float(k % 2)])))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = InverseDistanceConv(4, 16, normalize=True)
            self.conv2 = InverseDistanceConv(16, 16)
            self.head = torch.nn.Linear(16, 1)

        def forward(self, data):
            h = self.conv1(data.x, data.pos, data.edge_index).relu()
            h = self.conv2(h, data.pos, data.edge_index).relu()
            return self.head(global_mean_pool(h, data.batch)).squeeze(-1)

    torch.manual_seed(0)
    model = Model()
    loader = DataLoader(graphs, batch_size=3)
    batch = next(iter(loader))
    # A batched forward equals the per-graph forwards: no leakage between graphs.
    single = torch.cat([model(next(iter(DataLoader([gr], batch_size=1)))) for gr in graphs[:3]])
    assert torch.allclose(model(batch), single, atol=1e-6)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    first = None
    for _ in range(60):
        for b in loader:
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(b), b.y)
            loss.backward()
            opt.step()
            first = loss.item() if first is None else first
    assert loss.item() < first


def test_fused_aggregation_equals_gather_scatter_with_gradients_of_two_orders():
    from torch_geometric.utils import scatter

    from sparse_universe.nn import fused

    pos, x = _cloud(40)
    edge_index = radius_graph(pos, 0.9)
    source, target = edge_index
    conv = InverseDistanceConv(5, 3).double()
    h = conv.lin(x)
    w = conv.edge_weight(pos, edge_index)
    reference = scatter(w[:, None] * h[source], target, 0, 40, "sum")
    assert torch.allclose(conv.aggregate_weighted(h, edge_index, w), reference)
    old = fused.CHUNK
    fused.CHUNK = 7  # many chunks, ragged last one
    try:
        h = h.detach().requires_grad_()
        w = w.detach().requires_grad_()
        assert torch.autograd.gradcheck(lambda a, b: fused.aggregate(a, b, source, target, 40), (h, w))
        assert torch.autograd.gradgradcheck(lambda a, b: fused.aggregate(a, b, source, target, 40), (h, w))
        g = torch.randn(40, 3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradgradcheck(lambda a, b: fused.edge_dot(a, b, target, source), (g, h))
    finally:
        fused.CHUNK = old


def test_forces_from_the_conv_can_be_trained_on():
    # Double backward through positions: d/dtheta of |dE/dpos|^2.
    pos, x = _cloud(25)
    conv = InverseDistanceConv(5, 1, delta=0.05).double()
    p = pos.clone().requires_grad_()
    energy = conv(x, p, radius_graph(pos, 0.9)).sum()
    (force,) = torch.autograd.grad(energy, p, create_graph=True)
    force.square().sum().backward()
    assert conv.lin.weight.grad is not None and conv.lin.weight.grad.abs().sum() > 0


def test_csr_aggregation_is_the_same_sum_in_a_fixed_order_with_gradients_of_two_orders():
    # The CUDA default (segment_csr, no atomics), run here on CPU.
    from sparse_universe.nn import fused

    pos, x = _cloud(40)
    edge_index = radius_graph(pos, 0.9)[:, torch.randperm(radius_graph(pos, 0.9).size(1))]  # any edge order
    source, target = edge_index
    conv = InverseDistanceConv(5, 3).double()
    h = conv.lin(x).detach().requires_grad_()
    w = conv.edge_weight(pos, edge_index).detach().requires_grad_()
    csr = fused.aggregate(h, w, source, target, 40, deterministic=True)
    assert torch.allclose(csr, fused.aggregate(h, w, source, target, 40, deterministic=False))
    assert torch.equal(csr, fused.aggregate(h, w, source, target, 40, deterministic=True))
    assert torch.autograd.gradcheck(lambda a, b: fused.aggregate(a, b, source, target, 40, True), (h, w))
    assert torch.autograd.gradgradcheck(lambda a, b: fused.aggregate(a, b, source, target, 40, True), (h, w))
