import pytest
import torch

from sparse_universe import NeighborList, radius_graph
from sparse_universe.nn import CollisionConv, InverseDistanceConv


def _setup(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 2, generator=g, dtype=torch.float64) * 3
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    return pos, x


@pytest.mark.parametrize("surrogate", ["radius", "dense", None])
@pytest.mark.parametrize("normalize", [False, True])
def test_forward_is_exactly_the_sparse_aggregate(surrogate, normalize):
    pos, x = _setup()
    layer = CollisionConv(4, 3, eps=0.4, surrogate=surrogate, surrogate_radius=0.9, normalize=normalize).double()
    sparse = InverseDistanceConv(4, 3, normalize=normalize).double()
    sparse.load_state_dict(layer.conv.state_dict())
    assert torch.equal(layer(x, pos), sparse(x, pos, radius_graph(pos, 0.4)))


@pytest.mark.parametrize("surrogate, graph", [("radius", lambda p: radius_graph(p, 0.9)),
                                              ("dense", lambda p: radius_graph(p, 100.0)),
                                              (None, lambda p: radius_graph(p, 0.4))])
def test_gradients_are_the_surrogates(surrogate, graph):
    pos, x = _setup()
    layer = CollisionConv(4, 3, eps=0.4, surrogate=surrogate, surrogate_radius=0.9).double()
    reference = InverseDistanceConv(4, 3).double()
    reference.load_state_dict(layer.conv.state_dict())
    weights = torch.randn(60, 3, dtype=torch.float64)
    grads = []
    for fn in (lambda p, h: layer(h, p), lambda p, h: reference(h, p, graph(p))):
        p, h = pos.clone().requires_grad_(), x.clone().requires_grad_()
        (fn(p, h) * weights).sum().backward()
        grads.append((p.grad, h.grad))
    assert torch.allclose(grads[0][0], grads[1][0]) and torch.allclose(grads[0][1], grads[1][1])
    if surrogate is not None:  # the surrogate really differs from the sparse gradient
        p = pos.clone().requires_grad_()
        (reference(x, p, radius_graph(p, 0.4)) * weights).sum().backward()
        assert not torch.allclose(p.grad, grads[0][0])


def test_dense_equals_sparse_when_eps_covers_all_pairs():
    pos, x = _setup(30)
    dense = CollisionConv(4, 3, eps=100.0, surrogate="dense").double()
    sparse = CollisionConv(4, 3, eps=100.0, surrogate=None).double()
    sparse.load_state_dict(dense.state_dict())
    assert torch.allclose(dense(x, pos), sparse(x, pos))


def test_injected_neighbor_list_gives_the_same_result():
    pos, x = _setup()
    nl = NeighborList(0.9, skin=0.2)
    layer = CollisionConv(4, 3, eps=0.4, surrogate_radius=0.9, neighbor_search=nl.update).double()
    plain = CollisionConv(4, 3, eps=0.4, surrogate_radius=0.9).double()
    plain.load_state_dict(layer.state_dict())
    assert torch.equal(layer(x, pos), plain(x, pos))
    assert nl.num_builds == 1


def test_batches_do_not_collide():
    pos, x = _setup()
    batch = torch.arange(60) % 2
    layer = CollisionConv(4, 3, eps=0.5, surrogate="dense").double()
    out = layer(x, pos, batch)
    for b in (0, 1):
        m = batch == b
        assert torch.allclose(out[m], layer(x[m], pos[m]))


@pytest.mark.parametrize("kwargs, words", [(dict(eps=0.0), "'eps'"), (dict(eps=1.0, surrogate="wide"), "'surrogate'"),
                                           (dict(eps=1.0, surrogate_radius=0.5), "'surrogate_radius'")])
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        CollisionConv(4, 3, **kwargs)


def test_gradcheck_without_surrogate():
    # With a surrogate the gradient is by design not the forward value's; without one it must be exact.
    pos, x = _setup(20)
    layer = CollisionConv(4, 2, eps=0.9, surrogate=None, normalize=True).double()
    assert torch.autograd.gradcheck(lambda p, h: layer(h, p), (pos.requires_grad_(), x.requires_grad_()))
