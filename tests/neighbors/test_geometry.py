import torch

from sparse_universe import edge_vectors, radius_graph


def test_vectors_use_minimum_image():
    pos = torch.tensor([[0.1, 0.5], [1.9, 0.5]], dtype=torch.float64)
    edge_index = radius_graph(pos, 0.3, box=[2.0, 2.0])
    vec, dist = edge_vectors(pos, edge_index, box=[2.0, 2.0])
    # edge 1 -> 0: x_0 - x_1 through the wall is +0.2 along x.
    assert torch.allclose(vec[0], torch.tensor([0.2, 0.0], dtype=torch.float64))
    assert torch.allclose(dist, torch.full((2,), 0.2, dtype=torch.float64))


def test_gradcheck_open_and_periodic():
    g = torch.Generator().manual_seed(0)
    pos = (torch.rand(30, 3, generator=g, dtype=torch.float64) * 2).requires_grad_()
    for box in (None, [2.0, 2.0, 2.0]):
        edge_index = radius_graph(pos, 0.8, box=box)
        assert edge_index.size(1) > 0
        assert torch.autograd.gradcheck(lambda p, e=edge_index, b=box: edge_vectors(p, e, box=b), (pos,))


def test_coincident_points_have_zero_gradient_not_nan():
    pos = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.3, 0.0]], requires_grad=True)
    edge_index = radius_graph(pos, 0.5)
    _, dist = edge_vectors(pos, edge_index)
    dist.sum().backward()
    assert torch.isfinite(pos.grad).all()
    assert dist[(edge_index[0] == 1) & (edge_index[1] == 0)].item() == 0.0


def test_flow_target_to_source_gives_the_same_vectors():
    pos = torch.rand(40, 2, dtype=torch.float64)
    a = edge_vectors(pos, radius_graph(pos, 0.4))[0]
    b = edge_vectors(pos, radius_graph(pos, 0.4, flow="target_to_source"), flow="target_to_source")[0]
    assert torch.equal(a, b)
