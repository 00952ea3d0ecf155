"""Spatial decomposition: a grid of ranks over the box, who owns a particle, who needs it as a ghost."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor


def choose_grid(size: int, lengths: Sequence[float]) -> Tuple[int, ...]:
    """The grid of ``size`` ranks over a box of sides ``lengths`` whose bricks have the least exchanged surface.

    A brick's cost is the area of its faces that border another rank (faces
    normal to an axis cut into more than one brick), the volume a halo of
    fixed width scales with. Ties go to the most cubic bricks (whose halo
    corners and edges are smallest), then to the lexicographically largest
    grid, so slabs are cut along the first axis.
    """
    d = len(lengths)
    best: Optional[Tuple[float, Tuple[int, ...]]] = None
    for grid in _factorizations(size, d):
        widths = [length / g for length, g in zip(lengths, grid)]
        surface = sum(math.prod(widths[:k] + widths[k + 1:]) for k in range(d) if grid[k] > 1)
        key = (round(surface, 12), max(widths) / min(widths), tuple(-g for g in grid))
        if best is None or key < best[0]:
            best = (key, grid)
    assert best is not None
    return best[1]


def _factorizations(size: int, d: int):
    if d == 1:
        yield (size,)
        return
    for first in range(1, size + 1):
        if size % first == 0:
            for rest in _factorizations(size // first, d - 1):
                yield (first, *rest)


@dataclass(frozen=True)
class Domain:
    """A ``grid`` of bricks, one per rank (row-major: the last axis varies fastest).

    On a periodic axis the bricks tile ``[0, L)`` (the engine's wrap); on an
    open axis they tile ``[lo, hi]`` and the first and last brick reach to
    infinity, so every particle has an owner wherever it goes (only the load
    balance depends on ``lo`` and ``hi``).
    """

    grid: Tuple[int, ...]
    lo: Tuple[float, ...]
    hi: Tuple[float, ...]
    periodic: Tuple[bool, ...]

    @property
    def size(self) -> int:
        return math.prod(self.grid)

    @property
    def dim(self) -> int:
        return len(self.grid)

    def widths(self) -> Tensor:
        return (torch.tensor(self.hi, dtype=torch.float64) - torch.tensor(self.lo, dtype=torch.float64)) / \
            torch.tensor(self.grid, dtype=torch.float64)

    def coords(self, pos: Tensor) -> Tensor:
        """``(N, d)`` brick coordinates of positions (wrapped on periodic axes)."""
        x = pos.detach().to(torch.float64)
        lo = torch.tensor(self.lo, dtype=torch.float64, device=x.device)
        width = self.widths().to(x.device)
        grid = torch.tensor(self.grid, device=x.device)
        per = torch.tensor(self.periodic, device=x.device)
        length = torch.tensor(self.hi, dtype=torch.float64, device=x.device) - lo
        x = torch.where(per, torch.remainder(x - lo, length), x - lo)
        return torch.minimum(torch.floor(x / width).clamp(min=0).long(), grid - 1)

    def ravel(self, coords: Tensor) -> Tensor:
        """Rank of each row of brick coordinates."""
        rank = torch.zeros(coords.shape[:-1], dtype=torch.long, device=coords.device)
        for k, g in enumerate(self.grid):
            rank = rank * g + coords[..., k]
        return rank

    def owner(self, pos: Tensor) -> Tensor:
        """``(N,)`` the rank that owns each position."""
        return self.ravel(self.coords(pos))

    def halo(self, pos: Tensor, width: float, rank: int) -> Tuple[Tensor, Tensor]:
        """Rows of ``pos`` (owned by ``rank``) that another rank needs as ghosts, and that rank.

        A particle is a ghost of every other brick within ``width`` of it
        (Euclidean distance to the brick, through the periodic images), each
        rank at most once. Returns ``(index, dest)`` sorted by ``dest``, then
        ``index``.
        """
        x = pos.detach().to(torch.float64)
        n, d = x.shape
        own = self.coords(x)
        w = self.widths().tolist()
        sq: Optional[Tensor] = None
        dest: Optional[Tensor] = None
        for k, g in enumerate(self.grid):
            reach = min(math.ceil(width / w[k]), g - 1)
            brick, gap = self._gaps(x[:, k, None], k, own[:, k, None] + torch.arange(-reach, reach + 1))
            shape = [n] + [1] * d
            shape[1 + k] = gap.size(1)
            sq = _add(sq, (gap * gap).view(shape))
            dest = _add(None if dest is None else dest * g, brick.view(shape))
        assert sq is not None and dest is not None
        dest = dest.expand(sq.shape)
        hit = (sq <= width * width) & (dest != rank)
        index = torch.arange(n, device=x.device).view([n] + [1] * d).expand(sq.shape)[hit]
        key = torch.unique(dest[hit] * max(n, 1) + index)  # sorted by dest, then index; aliases once
        return key % max(n, 1), torch.div(key, max(n, 1), rounding_mode="floor")


    def distance(self, pos: Tensor, rank: int) -> Tensor:
        """``(N,)`` distance of each position from brick ``rank`` (0 inside; through the periodic images)."""
        x = pos.detach().to(torch.float64)
        coords = torch.tensor(np.unravel_index(rank, self.grid), device=x.device)
        sq = x.new_zeros(x.size(0))
        for k in range(self.dim):
            sq = sq + self._gaps(x[:, k, None], k, coords[k].expand(x.size(0), 1))[1][:, 0] ** 2
        return sq.sqrt()

    def _gaps(self, col: Tensor, k: int, cand: Tensor) -> Tuple[Tensor, Tensor]:
        """For coordinates ``col`` ``(N, 1)`` on axis ``k`` and brick coordinates ``cand`` ``(N, K)`` (any
        integers: wrapped on a periodic axis, out of range on an open one): the brick coordinates and the
        distances ``(N, K)`` (inf for a brick that does not exist)."""
        g, w = self.grid[k], float(self.widths()[k])
        cand = cand.to(col.device)
        if self.periodic[k]:
            length = self.hi[k] - self.lo[k]
            brick = torch.remainder(cand, g)
            low = self.lo[k] + brick.to(torch.float64) * w
            col = torch.remainder(col - self.lo[k], length) + self.lo[k]
            return brick, torch.stack([_gap(col + s, low, low + w) for s in (-length, 0.0, length)]).amin(0)
        low = torch.where(cand <= 0, -math.inf, self.lo[k] + cand.to(torch.float64) * w)
        high = torch.where(cand >= g - 1, math.inf, self.lo[k] + (cand + 1).to(torch.float64) * w)
        return cand.clamp(0, g - 1), torch.where((cand >= 0) & (cand < g), _gap(col, low, high), math.inf)


def _gap(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Distance from ``x`` to the interval ``[low, high]`` (0 inside)."""
    return torch.clamp(torch.maximum(low - x, x - high), min=0)


def _add(acc: Optional[Tensor], value: Tensor) -> Tensor:
    return value if acc is None else acc + value
