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
    when ``data.batch`` is present) and drops a stale ``edge_attr``. A
    ``Data`` with a ``cell`` (``(1, d, d)`` or ``(d, d)`` per example, as PyG
    materials datasets store it; ``(B, d, d)`` in a ``Batch``) and optionally
    ``pbc`` gets the periodic graph with every image, and its integer shifts
    in ``data.edge_shift`` ``(E, d)``: the source of edge ``e`` sits at
    ``pos[j] + edge_shift[e] @ cell``. Batches concatenate them like any
    edge attribute, and :func:`~sparse_universe.edge_vectors` takes them.

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
        cell = getattr(data, "cell", None) if self.box is None else None
        out = radius_graph(
            data.pos, self.r, getattr(data, "batch", None), loop=self.loop, box=self.box,
            periodic=self.periodic, cell=cell, pbc=getattr(data, "pbc", None) if cell is not None else None,
            return_shifts=cell is not None, max_num_neighbors=self.max_num_neighbors,
            backend=self.backend, flow=self.flow,
        )
        if cell is None:
            data.edge_index = out
        else:
            data.edge_index, data.edge_shift = out
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(r={self.r}, backend={self.backend!r})"


class RadiusInteractionGraph(nn.Module):
    r"""Neighbour search for SchNet-style models: ``(pos, batch) -> (edge_index, edge_weight)``.

    Pass it as ``SchNet(interaction_graph=RadiusInteractionGraph(cutoff))``.
    ``edge_weight`` is the distance of every edge and carries gradients to
    ``pos`` (and to ``cell``), so forces can be taken as ``-dE/dpos``.

    Periodic crystals: give the cells either here (``cell``, ``pbc``: one
    for every call, as SchNet passes only ``pos`` and ``batch``) or to
    ``forward`` (``cell (B, d, d)`` per example, e.g. ``data.cell``); every
    image within the cut-off is an edge.

    Args:
        cutoff (float): cut-off radius. (default: ``10.0``)
        max_num_neighbors (int, optional): ``None`` means unlimited. (default: ``None``)
        box, periodic, cell, pbc, backend: as in :func:`radius_graph`.

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
        cell: Optional[Tensor] = None,
        pbc: Optional[PerAxis] = None,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        self.cutoff = check_radius(cutoff, "cutoff")
        self.max_num_neighbors, self.box, self.periodic, self.backend = max_num_neighbors, box, periodic, backend
        self.cell, self.pbc = cell, pbc

    def forward(self, pos: Tensor, batch: Optional[Tensor] = None, cell: Optional[Tensor] = None,
                pbc: Optional[PerAxis] = None) -> Tuple[Tensor, Tensor]:
        cell, pbc = (self.cell, self.pbc) if cell is None else (cell, pbc)
        if cell is None:
            edge_index = radius_graph(pos, self.cutoff, batch, box=self.box, periodic=self.periodic,
                                      max_num_neighbors=self.max_num_neighbors, backend=self.backend)
            return edge_index, edge_vectors(pos, edge_index, self.box, self.periodic, validate=False)[1]
        search_cell = cell.detach() if isinstance(cell, Tensor) else cell
        edge_index, shifts = radius_graph(pos, self.cutoff, batch, cell=search_cell, pbc=pbc, return_shifts=True,
                                          max_num_neighbors=self.max_num_neighbors, backend=self.backend)
        return edge_index, edge_vectors(pos, edge_index, shifts=shifts, cell=cell, batch=batch, validate=False)[1]

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, backend={self.backend!r}"
