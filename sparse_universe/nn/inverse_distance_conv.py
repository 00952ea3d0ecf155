"""``InverseDistanceConv``: neighbours' features weighted by inverse distance."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

from ..neighbors.checks import check_edge_index, check_int, check_pos, check_real
from ..neighbors.geometry import edge_vectors
from .fused import aggregate


def as_edge_index(edge_index: Tensor, num_nodes: int) -> Tensor:
    """A checked ``(2, E)`` ``[source, target]`` tensor of ids below ``num_nodes``, from any edge form
    PyG convs accept.

    Sparse adjacency (``torch.sparse`` COO/CSR, as PyG's ``adj_t``) is read with
    rows as targets and columns as sources, as in PyG's convs.
    """
    if isinstance(edge_index, Tensor) and edge_index.layout != torch.strided:
        coo = edge_index.to_sparse_coo().coalesce()
        target, source = coo.indices()
        edge_index = torch.stack([source, target])
    return check_edge_index(edge_index, num_nodes)


def inverse_distance(dist: Tensor, delta: float) -> Tensor:
    r"""The softened weight :math:`w(r) = 1 / \sqrt{r^2 + \delta^2}` (``1 / r`` at ``delta = 0``)."""
    return torch.rsqrt(dist * dist + delta * delta)


class InverseDistanceConv(MessagePassing):
    r"""The seed's aggregation: a sum of neighbours' features weighted by inverse distance.

    .. math::
        \mathbf{x}'_i = \sum_{j \in \mathcal{N}(i)} w(r_{ij})\, \mathbf{\Theta} \mathbf{x}_j,
        \qquad w(r) = \frac{1}{\sqrt{r^2 + \delta^2}},
        \qquad r_{ij} = \lVert \mathbf{p}_i - \mathbf{p}_j \rVert

    With ``normalize=True`` the sum is divided by :math:`\sum_j w(r_{ij})`: the
    seed's reading of "single-head attention with inverse distance in place of
    the dot product" (weights that sum to one). :math:`\delta` softens
    coincident particles, which would otherwise weigh :math:`1/0`; with
    :math:`\delta = 0`, coincident pairs raise an error instead of making inf.
    The complete graph gives the seed's dense step; a radius graph its sparse
    one. Distances use the minimum image when ``box`` is given.

    Args:
        in_channels (int): size of each input feature.
        out_channels (int): size of each output feature.
        delta (float): softening length :math:`\delta \ge 0`. (default: ``1e-3``)
        normalize (bool): divide by the sum of weights. (default: ``False``)
        bias (bool): learn an additive bias in :math:`\Theta`. (default: ``True``)

    Shapes:
        x ``(N, F_in)``, pos ``(N, d)``, edge_index ``(2, E)`` or sparse ``(N, N)``
        -> ``(N, F_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, delta: float = 1e-3, normalize: bool = False,
                 bias: bool = True) -> None:
        super().__init__(aggr="add")
        self.in_channels, self.out_channels = check_int(in_channels, "in_channels", 1), check_int(
            out_channels, "out_channels", 1)
        self.delta, self.normalize = check_real(delta, "delta", 0.0), normalize
        self.lin = nn.Linear(in_channels, out_channels, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin.reset_parameters()

    def edge_weight(self, pos: Tensor, edge_index: Tensor, box: Optional[Tensor] = None) -> Tensor:
        """:math:`w(r_{ij})` of every edge, differentiable in ``pos`` (``edge_index`` already checked)."""
        return self.weight_of(edge_vectors(pos, edge_index, box, validate=False)[1])

    def weight_of(self, dist: Tensor) -> Tensor:
        """:math:`w(r)` for given distances (refuses ``1/0`` when ``delta = 0``)."""
        if self.delta == 0 and bool((dist == 0).any()):
            raise ValueError("Coincident particles with delta=0 would weigh 1/0: pass a softening delta > 0")
        return inverse_distance(dist, self.delta)

    def forward(self, x: Tensor, pos: Tensor, edge_index: Tensor, box: Optional[Tensor] = None) -> Tensor:
        check_pos(pos, finite=False)
        if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
            got = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"Expected 'x' to be a floating torch.Tensor (got {got})")
        if x.dim() != 2 or x.size(0) != pos.size(0):
            raise ValueError(f"Expected 'x' of shape ({pos.size(0)}, F) like 'pos' (got {tuple(x.shape)})")
        edge_index = as_edge_index(edge_index, pos.size(0))
        return self.aggregate_weighted(self.lin(x), edge_index, self.edge_weight(pos, edge_index, box))

    def aggregate_weighted(self, h: Tensor, edge_index: Tensor, weight: Tensor) -> Tensor:
        r""":math:`\sum_j w_{ij} h_j` (over :math:`\sum_j w_{ij}` if ``normalize``) for given weights."""
        # Gather, weight and scatter fused in cache-sized edge chunks: no (E, F)
        # message tensors (see ``fused.py``); PyG's default message/aggregate in value.
        out = aggregate(h, weight, edge_index[0], edge_index[1], h.size(0))
        if self.normalize:
            total = scatter(weight, edge_index[1], 0, h.size(0), "sum")
            out = out / torch.where(total > 0, total, 1.0)[:, None]
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"delta={self.delta}, normalize={self.normalize})")
