"""Verlet neighbour list: build once at ``r + skin``, filter until particles move."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..typing import Backend, Flow, OnOverflow, PerAxis
from .checks import check_batch, check_box, check_options, check_pos, check_radius
from .geometry import SLACK, accumulate_sq, exact_r2, pair_sq_dist, periods
from .radius import check_radius_fits, finish, prepare, radius_graph


class NeighborList:
    r"""Exact radius graph reused across steps (a Verlet list, as in JAX-MD).

    The list is built at radius ``(r + skin)(1 + 1e-4)``. While no particle has
    moved more than ``skin / 2`` since that build, every pair now within ``r``
    was within ``r + skin`` then (triangle inequality), so :meth:`update` only
    re-tests the cached pairs with the exact formula of :func:`radius_graph`
    and returns the *same tensor* a fresh :func:`radius_graph` would. Otherwise
    it rebuilds. Displacements use the minimum image in periodic boxes.

    Args:
        r (float): the exact cut-off.
        skin (float): extra radius of the cached list; larger means fewer
            rebuilds but more pairs to re-test.
        loop, box, periodic, max_num_neighbors, backend, flow, on_overflow:
            as in :func:`radius_graph`.

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
    ) -> None:
        self.r = check_radius(r)
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

    def update(self, pos: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        """The exact radius graph of ``pos``; rebuilds the cache only when needed.

        Shapes:
            pos ``(N, d)``, batch ``(N,)`` -> edge_index ``(2, E)``.
        """
        pos = check_pos(pos)
        batch = check_batch(batch, pos)
        box = check_box(self.box, self.periodic, pos)
        check_radius_fits((self.r + self.skin) * (1.0 + SLACK), box)
        work = prepare(pos, box)
        self.num_updates += 1
        if self._must_rebuild(work, batch, box):
            self._cached = radius_graph(
                work, (self.r + self.skin) * (1.0 + SLACK), batch, loop=self.loop, box=box,
                backend=self.backend,
            )
            self._reference, self._batch = work.clone(), batch
            self.num_builds += 1
        assert self._cached is not None
        source, target = self._cached
        keep = pair_sq_dist(work, target, source, box) <= exact_r2(self.r, work.dtype)
        return finish(self._cached[:, keep], self.max_num_neighbors, self.on_overflow, self.flow, work.size(0),
                      lambda e: pair_sq_dist(work, e[1], e[0], box))[0]

    def _must_rebuild(self, work: Tensor, batch: Optional[Tensor], box: Optional[Tensor]) -> bool:
        ref = self._reference
        if ref is None or ref.shape != work.shape or ref.dtype != work.dtype or ref.device != work.device:
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
