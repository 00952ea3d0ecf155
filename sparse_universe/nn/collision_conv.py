"""``CollisionConv``: the epsilon-sparse aggregate with a straight-through surrogate."""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import Tensor, nn

from ..neighbors import radius_graph
from ..neighbors.checks import check_box, check_choice, check_radius
from ..neighbors.geometry import exact_r2, pair_sq_dist, wrap
from ..typing import PerAxis
from .inverse_distance_conv import InverseDistanceConv, as_edge_index

#: A neighbour search: ``(pos, batch) -> edge_index`` at the layer's search radius.
NeighborSearch = Callable[[Tensor, Optional[Tensor]], Tensor]
SURROGATES = ("radius", "dense", None)


def straight_through(value: Tensor, surrogate: Tensor) -> Tensor:
    """Forward ``value`` exactly, backward the gradient of ``surrogate``."""
    return value.detach() + (surrogate - surrogate.detach())


def complete_graph(batch: Tensor) -> Tensor:
    """Every ordered pair ``j -> i``, ``i != j``, inside each example, sorted by target."""
    same = batch[:, None] == batch[None, :]
    same.fill_diagonal_(False)
    target, source = same.nonzero().unbind(1)
    return torch.stack([source, target])


def contacts(pos: Tensor, edge_index: Tensor, eps: Optional[float], delta: float,
             box: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    r"""Edges within ``eps`` by the exact test of :func:`radius_graph` (none if ``eps`` is ``None``), and
    their softened inverse distances :math:`1/\sqrt{r^2 + \delta^2}`, as constants of ``pos``."""
    source, target = edge_index
    sq = pair_sq_dist(wrap(pos.detach(), box), target, source, box)
    hit = sq <= exact_r2(eps, sq.dtype) if eps is not None else torch.zeros_like(sq, dtype=torch.bool)
    return hit, torch.rsqrt(sq + delta**2)


class CollisionConv(nn.Module):
    r"""The seed's sparsely localised collision aggregate, trainable through the cut-off.

    .. math::
        \Gamma_{ij} = [\lVert x_i - x_j \rVert \le \epsilon], \qquad
        \mathbf{a}_i = \sum_j \Gamma_{ij}\, w(r_{ij})\, \Theta \mathbf{h}_j

    The hard cut-off :math:`\Gamma` has no useful gradient: a particle just
    outside :math:`\epsilon` never learns it could have collided. As the seed's
    note asks, the *inner sum* is re-parameterised before MLP1: the forward
    value is the sparse aggregate :math:`\mathbf{a}`, the gradient is that of a
    surrogate aggregate :math:`\mathbf{s}` over more pairs,

    .. math::
        \mathbf{a}^{\mathrm{out}} = \varphi(\mathbf{a}) + \mathbf{s} - \varphi(\mathbf{s})

    (:math:`\varphi` = stop-gradient). This is the seed's
    :math:`\mathbf{s} + \varphi(\mathbf{a} - \mathbf{s})` written so that the
    forward value is bit-for-bit :math:`\mathbf{a}`.

    Surrogates: ``"dense"`` (all pairs of each universe; small N), ``"radius"``
    (pairs within ``surrogate_radius`` > eps, from the same exact engine; large
    N), ``None`` (the plain sparse gradient). :math:`\Gamma` uses the exact test
    of :func:`~sparse_universe.radius_graph`, so the sparse pairs are exactly
    its graph at ``eps``.

    Args:
        in_channels (int): size of each input feature.
        out_channels (int): size of each output feature.
        eps (float): collision distance :math:`\epsilon`.
        surrogate (str, optional): ``"radius"``, ``"dense"`` or ``None``. (default: ``"radius"``)
        surrogate_radius (float, optional): radius of the ``"radius"`` surrogate.
            (default: ``2 * eps``)
        delta (float): softening of :math:`w(r) = 1/\sqrt{r^2 + \delta^2}`. (default: ``1e-3``)
        normalize (bool): weights sum to one per particle. (default: ``False``)
        neighbor_search (callable, optional): ``(pos, batch) -> edge_index`` with
            every pair within the search radius (``eps``, or ``surrogate_radius``
            with the radius surrogate), e.g. a :class:`~sparse_universe.NeighborList`'s
            ``update``. (default: :func:`~sparse_universe.radius_graph`)
        box, periodic: periodic box, as in :func:`~sparse_universe.radius_graph`.

    Shapes:
        x ``(N, F_in)``, pos ``(N, d)``, batch ``(N,)`` -> ``(N, F_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, eps: float, surrogate: Optional[str] = "radius",
                 surrogate_radius: Optional[float] = None, delta: float = 1e-3, normalize: bool = False,
                 neighbor_search: Optional[NeighborSearch] = None, box: Optional[PerAxis] = None,
                 periodic: Optional[PerAxis] = None) -> None:
        super().__init__()
        self.eps = check_radius(eps, "eps")
        self.surrogate = check_choice(surrogate, "surrogate", SURROGATES)
        self.surrogate_radius = check_radius(surrogate_radius or 2 * self.eps, "surrogate_radius")
        if surrogate == "radius" and self.surrogate_radius <= self.eps:
            raise ValueError(f"Expected 'surrogate_radius' > eps={self.eps} (got {self.surrogate_radius})")
        self.box, self.periodic = box, periodic
        self.neighbor_search = neighbor_search
        self.conv = InverseDistanceConv(in_channels, out_channels, delta, normalize)

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    @property
    def search_radius(self) -> float:
        return self.surrogate_radius if self.surrogate == "radius" else self.eps

    def graph(self, pos: Tensor, batch: Optional[Tensor]) -> Tensor:
        """The pairs this layer aggregates over (before the eps test)."""
        if self.surrogate == "dense":
            ids = batch if batch is not None else torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
            return complete_graph(ids)
        if self.neighbor_search is not None:
            return as_edge_index(self.neighbor_search(pos, batch), pos.size(0))
        return radius_graph(pos, self.search_radius, batch, box=self.box, periodic=self.periodic)

    def collides(self, pos: Tensor, edge_index: Tensor, box: Optional[Tensor]) -> Tensor:
        r""":math:`\Gamma` of every edge, by the exact test of :func:`radius_graph`."""
        source, target = edge_index
        work = wrap(pos.detach(), box)
        return pair_sq_dist(work, target, source, box) <= exact_r2(self.eps, work.dtype)

    def contacts(self, pos: Tensor, edge_index: Tensor) -> Tuple[Tensor, Tensor]:
        r"""Edges in contact (:math:`\Gamma = 1`) and their softened :math:`w(r)`, as constants of ``pos``."""
        return contacts(pos, edge_index, self.eps, self.conv.delta, check_box(self.box, self.periodic, pos))

    def forward(self, x: Tensor, pos: Tensor, batch: Optional[Tensor] = None,
                edge_index: Optional[Tensor] = None) -> Tensor:
        """``edge_index``, if given, replaces :meth:`graph`: every pair within the search radius."""
        box = check_box(self.box, self.periodic, pos)
        edge_index = self.graph(pos, batch) if edge_index is None else as_edge_index(edge_index, pos.size(0))
        h = self.conv.lin(x)
        weight = self.conv.edge_weight(pos, edge_index, box)
        if self.surrogate is None:
            return self.conv.aggregate_weighted(h, edge_index, weight)
        with torch.no_grad():  # only its value is used: no graph to keep
            sparse = self.conv.aggregate_weighted(h, edge_index, weight * self.collides(pos, edge_index, box))
        return straight_through(sparse, self.conv.aggregate_weighted(h, edge_index, weight))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.conv.in_channels}, {self.conv.out_channels}, eps={self.eps}, "
                f"surrogate={self.surrogate!r}, search_radius={self.search_radius})")
