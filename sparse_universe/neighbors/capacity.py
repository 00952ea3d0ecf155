"""Capacity mode: the exact radius graph in a fixed-shape, padded tensor, for compiled models.

``torch.compile`` cannot trace a function whose output size depends on the
data (the number of edges). Here the graph comes padded to a ``capacity``
chosen by the caller, from a registered custom operator with a fake (meta)
implementation, so a model that builds its graph inside ``forward`` compiles
without a graph break::

    graph = radius_graph_padded(pos, r=5.0, batch=batch, capacity=64 * len(pos))
    weight = graph.mask * edge_weight_of(graph.edge_index)   # padded edges weigh 0

The edges are exactly those of :func:`~sparse_universe.radius_graph`, in the
same order, followed by padding (edges ``0 -> 0``, masked out). When the
graph has more edges than ``capacity`` the result is never silently
truncated into a smaller graph: ``overflow`` is set (a tensor, so no host
sync is needed to produce it), the first ``capacity`` edges are kept, and
:func:`grow` retries outside the compiled region with enough room.

On CPU the operator runs the eager engine inside (its host syncs are hidden
from the compiler); a CUDA kernel that writes into the capacity without a
host sync, for CUDA-graph capture, is still to come.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .checks import check_batch, check_int, check_pos, check_radius
from .radius import radius_graph


class PaddedGraph(NamedTuple):
    """A radius graph padded to a fixed capacity ``C``."""

    edge_index: Tensor  # (2, C) [source, target]: the edges, then padding 0 -> 0
    num_edges: Tensor  # () int64: edges in the exact graph (may exceed C: see overflow)
    overflow: Tensor  # () bool: num_edges > C, the padded graph is incomplete

    @property
    def mask(self) -> Tensor:
        """``(C,)`` bool: which columns of ``edge_index`` are edges."""
        return torch.arange(self.edge_index.size(1), device=self.edge_index.device) < self.num_edges


@torch.library.custom_op("sparse_universe::radius_graph_padded", mutates_args=())
def _radius_graph_padded(pos: Tensor, batch: Tensor, r: float, capacity: int, loop: bool) -> Tuple[Tensor, Tensor]:
    edge_index = radius_graph(check_pos(pos), r, batch, loop=loop)
    count = edge_index.size(1)
    out = edge_index.new_zeros(2, capacity)
    out[:, :min(count, capacity)] = edge_index[:, :capacity]
    return out, torch.tensor(count, dtype=torch.long, device=pos.device)


@_radius_graph_padded.register_fake
def _(pos: Tensor, batch: Tensor, r: float, capacity: int, loop: bool) -> Tuple[Tensor, Tensor]:
    return pos.new_empty(2, capacity, dtype=torch.long), pos.new_empty((), dtype=torch.long)


def radius_graph_padded(pos: Tensor, r: float, batch: Optional[Tensor] = None, *, capacity: int,
                        loop: bool = False) -> PaddedGraph:
    """:func:`~sparse_universe.radius_graph` padded to ``capacity`` edges: fixed shapes, no graph break.

    Args:
        pos (Tensor): positions ``(N, d)``.
        r (float): cut-off radius.
        batch (Tensor, optional): example ids ``(N,)``. (default: ``None``)
        capacity (int): columns of the padded ``edge_index``, ``>= 0``.
        loop (bool): add ``i -> i``. (default: ``False``)

    Returns:
        :class:`PaddedGraph` ``(edge_index (2, C), num_edges (), overflow ())``.
    """
    pos = check_pos(pos, finite=False)  # finiteness is checked inside the operator (data-dependent)
    r, capacity = check_radius(r), check_int(capacity, "capacity", 0)
    if batch is None:
        batch = torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
    batch = check_batch(batch, pos, values=False)  # the ids themselves are checked inside the operator
    edge_index, count = torch.ops.sparse_universe.radius_graph_padded(pos, batch, r, capacity, bool(loop))
    return PaddedGraph(edge_index, count, count > capacity)


def grow(build: Callable[[int], PaddedGraph], capacity: int, headroom: float = 1.25) -> Tuple[PaddedGraph, int]:
    """Call ``build(capacity)`` until nothing overflows; return the graph and the capacity that sufficed.

    On overflow the next capacity is ``headroom`` times the edges found, so
    at most one retry is needed for the same input. One host sync per call:
    use it outside the compiled or captured region.
    """
    capacity = check_int(capacity, "capacity", 0)
    while True:
        graph = build(capacity)
        if not bool(graph.overflow):
            return graph, capacity
        capacity = max(capacity + 1, int(int(graph.num_edges) * headroom))
