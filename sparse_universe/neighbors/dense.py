"""Brute-force reference backend: every pair, in bounded row chunks.

O(N^2) work and O(N * chunk) memory. It is the oracle the other backends are
tested against, and the fastest choice for a few thousand points.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .geometry import Pairs, accumulate_sq, columns, exact_r2, periods

#: Pair distances held at once (elements of the ``(rows, N)`` block).
BLOCK = 1 << 22


def dense_pairs(pos: Tensor, r: float, group: Tensor, box: Optional[Tensor]) -> Pairs:
    """Chunks of unordered pairs ``(a, b)``, ``a < b``, with ``d2 <= r * r`` and equal ``group``.

    One example: ``(rows, N)`` blocks. Several: block-diagonal, only the pairs
    inside each example are tested (see :func:`_within_examples`).

    Shapes:
        pos ``(N, d)``, group ``(N,)`` -> ``[(a (P,), b (P,)), ...]`` (int64).
    """
    if pos.size(0) > 1 and int(group.max()) != int(group.min()):
        return _within_examples(pos, r, group, box)
    return _blocks(pos, pos, r, box, upper=True)


def pairs_within_examples(group: Tensor) -> int:
    """How many pairs the block-diagonal search tests: ``sum_b n_b (n_b - 1) / 2``."""
    high = int(group.max()) if group.numel() else 0
    counts = torch.bincount(group) if high < 4 * group.numel() else torch.unique(group, return_counts=True)[1]
    return int((counts * (counts - 1)).sum()) // 2


def example_ranges(group: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Every pair inside each example once, as ranges: ``order`` sorts the particles by example, and
    particle ``t`` of the sorted order meets the later ones of its example, ``lo[t] .. lo[t] + count[t] - 1``
    (``lo[t] = t + 1``)."""
    order = torch.argsort(group, stable=True)
    _, counts = torch.unique_consecutive(group.index_select(0, order), return_counts=True)
    lo = torch.arange(1, group.numel() + 1, device=group.device)
    return order, lo, torch.cumsum(counts, 0).repeat_interleave(counts) - lo  # to the end of the example


def example_source_ranges(query_group: Tensor, source_group: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each query's sources as a range of the sources sorted by example: ``(q_order, s_order, lo, count)``;
    query ``t`` of the sorted queries meets sorted sources ``lo[t] .. lo[t] + count[t] - 1``."""
    q_order, s_order = torch.argsort(query_group, stable=True), torch.argsort(source_group, stable=True)
    sorted_source, mine = source_group.index_select(0, s_order), query_group.index_select(0, q_order)
    lo = torch.searchsorted(sorted_source, mine)
    return q_order, s_order, lo, torch.searchsorted(sorted_source, mine, right=True) - lo


def _within_examples(pos: Tensor, r: float, group: Tensor, box: Optional[Tensor]) -> Pairs:
    """Every pair inside each example once (:func:`example_ranges`), with no Python loop over examples."""
    order, lo, count = example_ranges(group)
    ordered = pos.index_select(0, order)
    return _test_ranges(ordered, ordered, lo, count, r, box, order, order)


def dense_bipartite(query: Tensor, source: Tensor, r: float, query_group: Tensor, source_group: Tensor) -> Pairs:
    """Every pair ``(q, s)`` with ``d2(query[q], source[s]) <= r * r`` and equal groups.

    One example: ``(rows, S)`` blocks; several: block-diagonal, each query
    against the sources of its example only.

    Shapes:
        query ``(Q, d)``, source ``(S, d)``, groups ``(Q,)``, ``(S,)`` -> ``[(q (P,), s (P,)), ...]``.
    """
    groups = torch.cat([query_group, source_group])
    if groups.numel() < 2 or int(groups.max()) == int(groups.min()):
        return _blocks(query, source, r, None, upper=False)
    q_order, s_order, begin, count = example_source_ranges(query_group, source_group)
    return _test_ranges(query.index_select(0, q_order), source.index_select(0, s_order), begin, count, r, None,
                        q_order, s_order)


def pairs_per_example(query_group: Tensor, source_group: Tensor) -> int:
    """How many pairs the block-diagonal bipartite search tests: ``sum_b q_b s_b``."""
    if query_group.numel() == 0 or source_group.numel() == 0:
        return 0
    size = int(max(query_group.max(), source_group.max())) + 1
    if size > 4 * (query_group.numel() + source_group.numel()):
        ids, dense = torch.unique(torch.cat([query_group, source_group]), return_inverse=True)
        query_group, source_group, size = dense[:query_group.numel()], dense[query_group.numel():], ids.numel()
    return int((torch.bincount(query_group, minlength=size) * torch.bincount(source_group, minlength=size)).sum())


def _test_ranges(query: Tensor, source: Tensor, begin: Tensor, count: Tensor, r: float, box: Optional[Tensor],
                 query_names: Tensor, source_names: Tensor) -> Pairs:
    """Test query row ``a`` against source rows ``begin[a] .. begin[a] + count[a] - 1``, for every ``a``.

    Pairs are generated in chunks of about ``BLOCK`` by arithmetic on the
    counts: a few tensor operations per chunk, however many examples there
    are. Returns the hits as ``(query_names[a], source_names[b])``.
    """
    first = torch.cumsum(count, 0) - count  # index of each query's first pair
    total = int(count.sum())
    cols, source_cols = columns(query), columns(source)
    per = periods(box, query.size(1))
    r2 = exact_r2(r, query.dtype)
    found: Pairs = []
    for start in range(0, total, BLOCK):
        pair = torch.arange(start, min(total, start + BLOCK), device=query.device)
        a = torch.searchsorted(first, pair, right=True) - 1  # the query whose pairs these are
        b = begin.index_select(0, a) + (pair - first.index_select(0, a))
        acc: Optional[Tensor] = None
        for k in range(len(cols)):
            acc = accumulate_sq(acc, cols[k].index_select(0, a) - source_cols[k].index_select(0, b), per[k])
        hit = (acc <= r2).nonzero().view(-1)
        found.append((query_names.index_select(0, a.index_select(0, hit)),
                      source_names.index_select(0, b.index_select(0, hit))))
    return found


def _blocks(query: Tensor, source: Tensor, r: float, box: Optional[Tensor], upper: bool) -> Pairs:
    """Test ``(rows, S)`` blocks of query rows against every source (one example); ``upper``: only ``s > q``."""
    n, dim = query.shape
    per = periods(box, dim)
    r2 = exact_r2(r, query.dtype)
    cols, source_cols = columns(query), columns(source)
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
        a, b = keep.nonzero().unbind(1)
        found.append((a + start, b))
    return found
