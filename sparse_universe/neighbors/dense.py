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
    return _blocks(pos, pos, r, group, group, box, upper=True)


def dense_bipartite(query: Tensor, source: Tensor, r: float, query_group: Tensor, source_group: Tensor) -> Pairs:
    """Every pair ``(q, s)`` with ``d2(query[q], source[s]) <= r * r`` and equal groups.

    Shapes:
        query ``(Q, d)``, source ``(S, d)``, groups ``(Q,)``, ``(S,)`` -> ``[(q (P,), s (P,)), ...]``.
    """
    return _blocks(query, source, r, query_group, source_group, None, upper=False)


def _blocks(query: Tensor, source: Tensor, r: float, query_group: Tensor, source_group: Tensor,
            box: Optional[Tensor], upper: bool) -> Pairs:
    """Test ``(rows, S)`` blocks of query rows against every source; ``upper``: only ``s > q``."""
    n, dim = query.shape
    per = periods(box, dim)
    r2 = exact_r2(r, query.dtype)
    cols = [query[:, k].contiguous() for k in range(dim)]
    source_cols = [source[:, k].contiguous() for k in range(dim)]
    arange = torch.arange(max(n, source.size(0)), device=query.device)
    rows = max(1, BLOCK // max(source.size(0), 1))
    found: Pairs = []
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        acc: Optional[Tensor] = None
        for k in range(dim):
            acc = accumulate_sq(acc, cols[k][start:stop, None] - source_cols[k][None, :], per[k])
        assert acc is not None
        keep = acc <= r2
        if upper:  # each pair once
            keep &= arange[None, :source.size(0)] > arange[start:stop, None]
        keep &= query_group[start:stop, None] == source_group[None, :]
        a, b = keep.nonzero().unbind(1)
        found.append((a + start, b))
    return found
