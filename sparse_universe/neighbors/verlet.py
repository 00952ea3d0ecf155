"""Verlet neighbour list: build once at ``r + skin``, filter until particles move."""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from ..typing import Backend, Flow, OnOverflow, PerAxis
from .cells import Cells, check_cells
from .checks import check_batch, check_box, check_options, check_pos, check_radius
from .geometry import SLACK, accumulate_sq, exact_r2, pair_sq_dist, periods
from .radius import check_radius_fits, edge_sq_dist, finish, prepare, radius_graph


class NeighborList:
    r"""Exact radius graph reused across steps (a Verlet list, as in JAX-MD).

    The list is built at radius ``(r + skin)(1 + 1e-4)``. While no particle has
    moved more than ``skin / 2`` since that build, every pair now within ``r``
    was within ``r + skin`` then (triangle inequality), so :meth:`update` only
    re-tests the cached pairs with the exact formula of :func:`radius_graph`
    and returns the *same tensor* a fresh :func:`radius_graph` would. Otherwise
    it rebuilds. Displacements use the minimum image in periodic boxes.

    Periodic cells are passed to :meth:`update` (``cell``, ``pbc``, per
    example as in :func:`radius_graph`), since they belong to the data and
    may change: the cached edges keep their shifts, and the list is rebuilt
    whenever the cell changes or a particle moved more than ``skin / 2`` in
    the coordinates given (a particle wrapped back into the cell by the
    caller counts as moved, which keeps every cached shift valid).

    Args:
        r (float): the exact cut-off.
        skin (float): extra radius of the cached list; larger means fewer
            rebuilds but more pairs to re-test.
        loop, box, periodic, max_num_neighbors, backend, flow, on_overflow:
            as in :func:`radius_graph`.
        return_shifts (bool): :meth:`update` also returns the shifts (with a cell).
            (default: ``False``)

    Attributes:
        num_builds (int): how many times the list was rebuilt.
        num_updates (int): how many times :meth:`update` was called.

    Example:
        >>> nl = NeighborList(r=0.1, skin=0.05)
        >>> for pos in trajectory:  # doctest: +SKIP
        ...     edge_index = nl.update(pos)
    """

    def __init__(
        self,
        r: float,
        skin: float,
        *,
        loop: bool = False,
        box: Optional[PerAxis] = None,
        periodic: Optional[PerAxis] = None,
        max_num_neighbors: Optional[int] = None,
        backend: Backend = "auto",
        flow: Flow = "source_to_target",
        on_overflow: OnOverflow = "raise",
        return_shifts: bool = False,
    ) -> None:
        self.r = check_radius(r)
        self.return_shifts = return_shifts
        self.skin = check_radius(skin, "skin")
        self.loop = bool(loop)
        self.box, self.periodic = box, periodic
        self.backend, self.flow, self.on_overflow, self.max_num_neighbors = check_options(
            backend, flow, on_overflow, max_num_neighbors)
        self.num_builds = 0
        self.num_updates = 0
        self._reference: Optional[Tensor] = None
        self._batch: Optional[Tensor] = None
        self._cached: Optional[Tensor] = None  # [source, target] at r + skin, sorted
        self._shifts: Optional[Tensor] = None  # their shifts, with a cell
        self._cells: Optional[Cells] = None

    def update(self, pos: Tensor, batch: Optional[Tensor] = None, *, cell: Optional[Tensor] = None,
               pbc: Optional[PerAxis] = None) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """The exact radius graph of ``pos`` (and shifts, with ``return_shifts``); rebuilds only when needed.

        Shapes:
            pos ``(N, d)``, batch ``(N,)``, cell ``(d, d)`` or ``(B, d, d)`` -> edge_index ``(2, E)``.
        """
        pos = check_pos(pos)
        batch = check_batch(batch, pos)
        if self.box is not None and (cell is not None or pbc is not None):
            raise ValueError("Got a 'cell' for a NeighborList made with a 'box': give the periodic box one way")
        cells = check_cells(cell, pbc, pos, batch)
        box = check_box(self.box, self.periodic, pos)
        check_radius_fits((self.r + self.skin) * (1.0 + SLACK), box)
        work = prepare(pos, box)
        self.num_updates += 1
        if self._must_rebuild(work, batch, box, cells):
            built = radius_graph(work, (self.r + self.skin) * (1.0 + SLACK), batch, loop=self.loop, box=box,
                                 cell=None if cells is None else cells.cell, pbc=None if cells is None else cells.pbc,
                                 return_shifts=cells is not None, backend=self.backend)
            self._cached, self._shifts = built if cells is not None else (built, None)
            self._reference, self._batch, self._cells = work.clone(), batch, cells
            self.num_builds += 1
        assert self._cached is not None
        if cells is None:
            distance = lambda e, s: pair_sq_dist(work, e[1], e[0], box)  # noqa: E731
        else:
            distance = lambda e, s: edge_sq_dist(work, e, s, cells)  # noqa: E731
        keep = distance(self._cached, self._shifts) <= exact_r2(self.r, work.dtype)
        edge_index, shifts = self._cached[:, keep], None if self._shifts is None else self._shifts[keep]
        edge_index, shifts = finish(edge_index, self.max_num_neighbors, self.on_overflow, self.flow, work.size(0),
                                    lambda e: distance(e, shifts), shifts)
        if not self.return_shifts:
            return edge_index
        return edge_index, shifts if shifts is not None else edge_index.new_zeros(edge_index.size(1), pos.size(1))

    def _must_rebuild(self, work: Tensor, batch: Optional[Tensor], box: Optional[Tensor],
                      cells: Optional[Cells]) -> bool:
        ref = self._reference
        if ref is None or ref.shape != work.shape or ref.dtype != work.dtype or ref.device != work.device:
            return True
        if (cells is None) != (self._cells is None) or (cells is not None and not (
                torch.equal(cells.cell, self._cells.cell) and torch.equal(cells.pbc, self._cells.pbc))):
            return True
        if (batch is None) != (self._batch is None) or (
            batch is not None and not torch.equal(batch, self._batch)
        ):
            return True
        if work.size(0) == 0:
            return False
        per = periods(box, work.size(1))
        moved: Optional[Tensor] = None
        for k in range(work.size(1)):
            moved = accumulate_sq(moved, work[:, k] - ref[:, k], per[k])
        assert moved is not None
        return float(moved.max()) > (self.skin / 2) ** 2

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(r={self.r}, skin={self.skin}, "
            f"builds={self.num_builds}, updates={self.num_updates})"
        )
