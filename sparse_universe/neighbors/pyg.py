"""Drop-in pieces for PyG pipelines: a transform and a SchNet interaction graph."""

from __future__ import annotations

from typing import Optional, Tuple

from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from ..typing import Backend, Flow, PerAxis
from .checks import check_radius
from .geometry import edge_vectors
from .radius import radius_graph


class RadiusGraph(BaseTransform):
    r"""Like :class:`torch_geometric.transforms.RadiusGraph`, on this exact engine.

    Sets ``data.edge_index`` to the radius graph of ``data.pos`` (per example
    when ``data.batch`` is present) and drops a stale ``edge_attr``.

    Args:
        r (float): cut-off radius.
        loop (bool): add self-loops. (default: ``False``)
        max_num_neighbors (int, optional): ``None`` means unlimited; above a
            given cap :class:`NeighborOverflowError` is raised. (default: ``None``)
        flow (str): (default: ``"source_to_target"``)
        box, periodic, backend: as in :func:`radius_graph`.

    Example:
        >>> dataset = MyDataset(transform=RadiusGraph(r=1.5))  # doctest: +SKIP
    """

    def __init__(
        self,
        r: float,
        loop: bool = False,
        max_num_neighbors: Optional[int] = None,
        flow: Flow = "source_to_target",
        *,
        box: Optional[PerAxis] = None,
        periodic: Optional[PerAxis] = None,
        backend: Backend = "auto",
    ) -> None:
        self.r = check_radius(r)
        self.loop, self.max_num_neighbors, self.flow = loop, max_num_neighbors, flow
        self.box, self.periodic, self.backend = box, periodic, backend

    def forward(self, data: Data) -> Data:
        if getattr(data, "pos", None) is None:
            raise ValueError("RadiusGraph needs 'data.pos' (got a Data object without positions)")
        data.edge_attr = None
        data.edge_index = radius_graph(
            data.pos, self.r, getattr(data, "batch", None), loop=self.loop, box=self.box,
            periodic=self.periodic, max_num_neighbors=self.max_num_neighbors,
            backend=self.backend, flow=self.flow,
        )
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(r={self.r}, backend={self.backend!r})"


class RadiusInteractionGraph(nn.Module):
    r"""Neighbour search for SchNet-style models: ``(pos, batch) -> (edge_index, edge_weight)``.

    Pass it as ``SchNet(interaction_graph=RadiusInteractionGraph(cutoff))``.
    ``edge_weight`` is the (minimum-image) distance of every edge and carries
    gradients to ``pos``, so forces can be taken as ``-dE/dpos``.

    Args:
        cutoff (float): cut-off radius. (default: ``10.0``)
        max_num_neighbors (int, optional): ``None`` means unlimited. (default: ``None``)
        box, periodic, backend: as in :func:`radius_graph`.

    Shapes:
        pos ``(N, d)``, batch ``(N,)`` -> edge_index ``(2, E)``, edge_weight ``(E,)``.
    """

    def __init__(
        self,
        cutoff: float = 10.0,
        max_num_neighbors: Optional[int] = None,
        *,
        box: Optional[PerAxis] = None,
        periodic: Optional[PerAxis] = None,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        self.cutoff = check_radius(cutoff, "cutoff")
        self.max_num_neighbors, self.box, self.periodic, self.backend = max_num_neighbors, box, periodic, backend

    def forward(self, pos: Tensor, batch: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        edge_index = radius_graph(
            pos, self.cutoff, batch, box=self.box, periodic=self.periodic,
            max_num_neighbors=self.max_num_neighbors, backend=self.backend,
        )
        _, edge_weight = edge_vectors(pos, edge_index, self.box, self.periodic)
        return edge_index, edge_weight

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, backend={self.backend!r}"
