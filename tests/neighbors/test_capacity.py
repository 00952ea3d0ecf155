"""Capacity mode: fixed-shape padded graphs from a custom operator that torch.compile traces."""

import pytest
import torch
from torch_geometric.utils import scatter

from sparse_universe import radius_graph
from sparse_universe.neighbors.capacity import grow, radius_graph_padded


def cloud(n=300, examples=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 3, generator=g)
    batch = torch.randint(0, examples, (n,), generator=g)  # any order
    return pos, batch


def test_padded_graph_is_the_exact_graph_then_padding():
    pos, batch = cloud()
    exact = radius_graph(pos, 0.3, batch, loop=True)
    graph = radius_graph_padded(pos, 0.3, batch, capacity=exact.size(1) + 50, loop=True)
    assert graph.edge_index.shape == (2, exact.size(1) + 50)
    assert int(graph.num_edges) == exact.size(1) and not bool(graph.overflow)
    assert torch.equal(graph.edge_index[:, graph.mask], exact)
    assert not bool(graph.edge_index[:, ~graph.mask].any())  # padding: edges 0 -> 0, masked out


def test_overflow_is_flagged_never_silent_and_grow_retries_once():
    pos, batch = cloud()
    exact = radius_graph(pos, 0.3, batch)
    small = radius_graph_padded(pos, 0.3, batch, capacity=100)
    assert bool(small.overflow) and int(small.num_edges) == exact.size(1)
    assert torch.equal(small.edge_index, exact[:, :100])  # the first edges, flagged as incomplete
    calls = []

    def build(capacity):
        calls.append(capacity)
        return radius_graph_padded(pos, 0.3, batch, capacity=capacity)

    graph, capacity = grow(build, 100)
    assert len(calls) == 2 and capacity >= exact.size(1)
    assert torch.equal(graph.edge_index[:, graph.mask], exact)


def test_bad_input_is_named():
    pos, batch = cloud()
    with pytest.raises(ValueError, match="'capacity'"):
        radius_graph_padded(pos, 0.3, batch, capacity=-1)
    bad = pos.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="'pos'.*NaN"):
        radius_graph_padded(bad, 0.3, batch, capacity=10)


class Model(torch.nn.Module):
    """Builds its graph inside forward and aggregates with the mask."""

    def __init__(self, capacity: int = 4096) -> None:
        super().__init__()
        self.lin, self.capacity = torch.nn.Linear(3, 8), capacity

    def forward(self, pos, batch):
        graph = radius_graph_padded(pos, 0.3, batch, capacity=self.capacity)
        source, target = graph.edge_index
        weight = graph.mask.to(pos.dtype) / ((pos[source] - pos[target]).pow(2).sum(-1) + 1e-2)
        return scatter(self.lin(pos)[source] * weight[:, None], target, 0, dim_size=pos.size(0), reduce="sum")


def test_compiled_model_matches_eager_without_a_graph_break():
    torch._dynamo.reset()
    model = Model()
    compiled = torch.compile(model, fullgraph=True)  # any graph break would raise
    for n, seed in ((300, 1), (240, 2)):
        pos, batch = cloud(n, seed=seed)
        assert not bool(radius_graph_padded(pos, 0.3, batch, capacity=model.capacity).overflow)
        torch.testing.assert_close(compiled(pos, batch), model(pos, batch))
    explained = torch._dynamo.explain(model)(*cloud())
    assert explained.graph_break_count == 0


def test_custom_op_passes_opcheck():
    pos, batch = cloud()
    op = torch.ops.sparse_universe.radius_graph_padded.default
    result = torch.library.opcheck(op, (pos, batch, 0.3, 2048, False))
    assert all(v == "SUCCESS" for v in result.values()), result
