"""Brute-force reference backend: every pair, in bounded row chunks.

O(N^2) work and O(N * chunk) memory. It is the oracle the other backends are
tested against, and the fastest choice for a few thousand points.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .geometry import Pairs, accumulate_sq, exact_r2, periods

#: Pair distances held at once (elements of the ``(rows, N)`` block).
BLOCK = 1 << 22


def dense_pairs(pos: Tensor, r: float, group: Tensor, box: Optional[Tensor]) -> Pairs:
    """Chunks of unordered pairs ``(a, b)``, ``a < b``, with ``d2 <= r * r`` and equal ``group``.

    Shapes:
        pos ``(N, d)``, group ``(N,)`` -> ``[(a (P,), b (P,)), ...]`` (int64).
    """
    n, dim = pos.shape
    per = periods(box, dim)
    r2 = exact_r2(r, pos.dtype)
    cols = [pos[:, k].contiguous() for k in range(dim)]
    arange = torch.arange(n, device=pos.device)
    rows = max(1, BLOCK // max(n, 1))
    found: Pairs = []
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        acc: Optional[Tensor] = None
        for k in range(dim):
            acc = accumulate_sq(acc, cols[k][start:stop, None] - cols[k][None, :], per[k])
        assert acc is not None
        keep = acc <= r2
        keep &= arange[None, :] > arange[start:stop, None]  # upper triangle: each pair once
        keep &= group[start:stop, None] == group[None, :]
        a, b = keep.nonzero().unbind(1)
        found.append((a + start, b))
    return found
