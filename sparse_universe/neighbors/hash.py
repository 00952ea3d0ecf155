"""Spatial hash (cell list) neighbour search in pure PyTorch, CPU and CUDA.

Why this shape
--------------
A pair within ``r`` lies in the same or an adjacent cell of side ``h >= r``:
``cell = floor(pos / h)``. Sorting particles by cell in row-major order (the
*fast* axis varying quickest) makes the three cells ``cx - 1, cx, cx + 1`` of a
row contiguous in memory, so a particle's candidates are ``3^(d-1)`` *ranges*
of the sorted array, one per neighbouring row, found with two binary searches
per occupied cell. Along the fast axis we cut cells ``s`` times finer
(``subdivisions``): the window ``cx - s .. cx + s`` then spans ``2 + 1/s``
cell widths instead of 3, which trims candidates by up to a third.

Each unordered pair is visited once (a *half list*): only rows whose offset is
positive in lexicographic order, plus the particle's own row to the right of
it. The batch id is the slowest row coordinate with no offset, so examples
never meet and batch vectors need not be sorted. The bipartite search
(:func:`hash_bipartite`: queries against sources, e.g. particles against
periodic images) keys both sets on one grid, sorts only the sources, and
scans every neighbouring row of each query.

Ranges have different lengths. We bucket them by length (exactly up to 32,
then in steps of 12.5%) so each bucket is a dense ``(rows, width)`` block
``j = lo[:, None] + arange(width)``: the test is a broadcast over a rectangle,
with no per-candidate ``repeat_interleave``. Blocks are cut into chunks of
about ``CHUNK`` candidates, small enough to stay in cache (fresh large
allocations on CPU cost a page fault per 4 KiB), so peak memory is O(N + E).

Batches of small examples (molecules, a crystal's images) need no spatial
grid: :func:`example_pairs` and :func:`example_bipartite` make each example
one cell, whose ranges are the rest of the example, and scan them the same way.

Every candidate is tested with :func:`~.geometry.accumulate_sq`, the formula
the dense reference uses, so the result is exact, not approximate.
"""

from __future__ import annotations

import itertools
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .dense import example_ranges, example_source_ranges
from .geometry import Pairs, accumulate_sq, columns, exact_r2, periods, search_radius
from .sorting import flat_nonzero

#: Candidates tested per chunk on CPU / CUDA.
CHUNK = {"cpu": 1 << 20, "cuda": 1 << 25}
#: Range lengths up to this are bucketed exactly; longer ones share padded buckets.
EXACT_WIDTH = 32
#: Padded candidates below which all ranges share one bucket (see ``_buckets``).
ONE_BUCKET = 1 << 17
#: What one bucket's tensor operations cost on a CPU, in candidates tested (see ``_buckets``).
BUCKET_COST = 1 << 15
_INT63 = 1 << 62


class CellIndexOverflow(ValueError):
    """The occupied cells of a very sparse, high-dimensional cloud have no int64 index."""


def hash_pairs(
    cell_pos: Tensor,
    r: float,
    group: Tensor,
    filter_pos: Tensor,
    box: Optional[Tensor] = None,
    subdivisions: int = 2,
) -> Pairs:
    """Unordered pairs ``(a, b)`` of rows with ``d2 <= r * r`` and equal ``group``.

    Args:
        cell_pos (Tensor): float64 positions that place particles in cells (these
            may be shifted periodic images).
        r (float): the exact radius.
        group (Tensor): int64 batch id of every row.
        filter_pos (Tensor): positions the exact test reads (minimum image when
            ``box`` is given).
        box (Tensor, optional): periods, ``inf`` on open axes.
        subdivisions (int): cells per ``h`` along the fast axis.

    Returns:
        chunks of pairs ``[(a, b), ...]`` of rows, each pair once.

    Shapes:
        cell_pos ``(M, d)``, group ``(M,)``, filter_pos ``(M, d)``.
    """
    m, dim = cell_pos.shape
    if m < 2:
        return []
    s = subdivisions
    key, width, neighbor_rows = _cell_keys(cell_pos, group, search_radius(r, filter_pos.dtype, dim), s, half=True)
    order = torch.argsort(key, stable=True)
    key = key.index_select(0, order)
    cell_key, cell_of = torch.unique_consecutive(key, return_inverse=True)
    lo, count = _ranges(key, cell_key, width, s, neighbor_rows)  # (C, 1 + n_off)
    lo = lo.index_select(0, cell_of)  # (M, 1 + n_off)
    count = count.index_select(0, cell_of)
    # Own row: only particles to the right, so each pair is seen once.
    ids = torch.arange(m, device=key.device)
    count[:, 0] -= ids + 1 - lo[:, 0]
    lo[:, 0] = ids + 1

    cols = columns(filter_pos, order)
    return _scan(lo.view(-1), count.view(-1), 1 + neighbor_rows.size(1), cols, cols, r, box, order, order)


def example_pairs(pos: Tensor, r: float, group: Tensor, box: Optional[Tensor] = None) -> Pairs:
    """Unordered pairs ``(a, b)`` with ``d2 <= r * r`` inside each example: each example is one cell.

    For batches of small examples (molecules), where every pair inside an
    example is worth testing: each particle's range of later particles in its
    example (:func:`~.dense.example_ranges`) is scanned like the cell list's
    ranges (:func:`_scan`), with no Python loop over examples.

    Shapes:
        pos ``(N, d)``, group ``(N,)`` -> ``[(a (P,), b (P,)), ...]`` (int64).
    """
    order, lo, count = example_ranges(group)
    cols = columns(pos, order)
    return _scan(lo, count, 1, cols, cols, r, box, order, order)


def example_bipartite(query: Tensor, source: Tensor, r: float, query_group: Tensor, source_group: Tensor) -> Pairs:
    """Pairs ``(q, s)`` with ``d2(query[q], source[s]) <= r * r`` and equal groups, each example one cell:
    every query meets the range of sorted sources of its example.

    Shapes:
        query ``(Q, d)``, source ``(S, d)``, groups ``(Q,)``, ``(S,)`` -> ``[(q (P,), s (P,)), ...]``.
    """
    if query.size(0) == 0 or source.size(0) == 0:
        return []
    q_order, s_order, lo, count = example_source_ranges(query_group, source_group)
    return _scan(lo, count, 1, columns(query, q_order), columns(source, s_order), r, None, q_order, s_order)


def hash_bipartite(query: Tensor, source: Tensor, r: float, query_group: Tensor, source_group: Tensor,
                   subdivisions: int = 2) -> Pairs:
    """Pairs ``(q, s)`` with ``d2(query[q], source[s]) <= r * r`` and equal groups: every query meets
    every source (no half list, no self-pair removal).

    The same cell list as :func:`hash_pairs`, built over both sets at once so
    that their cell keys agree; only the sources are sorted, and each query
    scans the ranges of its full ``3^(d-1)`` neighbouring rows.

    Shapes:
        query ``(Q, d)``, source ``(S, d)`` (one floating dtype), groups ``(Q,)``, ``(S,)``
        -> ``[(q (P,), s (P,)), ...]``.
    """
    nq, dim = query.shape
    if nq == 0 or source.size(0) == 0:
        return []
    s = subdivisions
    both = torch.cat([query, source]).to(torch.float64)
    key, width, neighbor_rows = _cell_keys(both, torch.cat([query_group, source_group]),
                                           search_radius(r, query.dtype, dim), s, half=False)
    query_key, source_key = key[:nq], key[nq:]
    order = torch.argsort(source_key, stable=True)
    source_key = source_key.index_select(0, order)
    cell_key, cell_of = torch.unique(query_key, return_inverse=True)
    lo, count = _ranges(source_key, cell_key, width, s, neighbor_rows, own=False)  # (C, n_off)
    lo, count = lo.index_select(0, cell_of), count.index_select(0, cell_of)  # (Q, n_off)
    return _scan(lo.view(-1), count.view(-1), neighbor_rows.size(1), columns(query), columns(source, order), r, None,
                 torch.arange(nq, device=query.device), order)


def _cell_keys(pos: Tensor, group: Tensor, h: float, s: int, half: bool) -> Tuple[Tensor, int, Tensor]:
    """Row-major cell key of every row, the row width, and each occupied row's neighbour rows.

    ``half`` keeps only the neighbour rows at a positive offset (each pair once);
    otherwise every offset, its own row included.
    """
    dim = pos.size(1)
    low = pos.min(0).values
    extent = pos.max(0).values - low
    if float(extent.max()) * (s / h) >= _INT63:
        raise CellIndexOverflow(f"backend='hash' cannot index cells of side {h:.3g} across an extent of "
                                f"{float(extent.max()):.3g}; use backend='cluster' or 'dense'")
    fast = int(torch.argmax(extent))
    slow = [k for k in range(dim) if k != fast]
    cells = torch.floor((pos - low) / h).long()  # (M, d) >= 0
    cx = torch.floor((pos[:, fast] - low[fast]) * (s / h)).long()

    row, neighbor_rows = _rows(group, cells[:, slow], half)  # (M,), (U, n_off)
    if (int(cx.max()) + 2 * s + 1) * _row_count(neighbor_rows) >= _INT63:
        cx = _compress(cx, gap=s + 1)
    cx += s  # the window cx - s .. cx + s stays inside the row
    width = int(cx.max()) + s + 1
    return row * width + cx, width, neighbor_rows


def _compress(c: Tensor, gap: int) -> Tensor:
    """Renumber integer coordinates from 0, capping gaps at ``gap``.

    Distances below ``gap`` are kept, larger ones become ``gap``: adjacency is
    unchanged, but the range of values is at most ``gap * N``, so keys fit int64
    however sparse the cloud is.
    """
    uniq, inv = torch.unique(c, return_inverse=True)
    steps = torch.diff(uniq).clamp_(max=gap)
    return torch.cat([steps.new_zeros(1), steps.cumsum(0)]).index_select(0, inv)


def _rows(group: Tensor, slow: Tensor, half: bool = True) -> Tuple[Tensor, Tensor]:
    """Dense row ids and, per row, the ids of its neighbour rows (-1: empty); ``half``: positive offsets only."""
    cols = [group] + [slow[:, k] + 1 for k in range(slow.size(1))]
    strides, total = _strides(cols)
    if total >= _INT63:
        cols = [group] + [_compress(slow[:, k], gap=2) + 1 for k in range(slow.size(1))]
        strides, total = _strides(cols)
    if total >= _INT63:
        raise CellIndexOverflow(
            f"backend='hash' cannot index {slow.size(1) + 1}-dimensional cells this sparse "
            f"(about {total:.3g} cells); use backend='cluster' or 'dense'"
        )
    key = sum(c * st for c, st in zip(cols, strides))
    row_key, row = torch.unique(key, sorted=True, return_inverse=True)
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=slow.size(1)) if not half or o > (0,) * len(o)]
    delta = torch.tensor([sum(o_k * st for o_k, st in zip(o, strides[1:])) for o in offsets],
                         dtype=torch.long, device=key.device)
    want = row_key[:, None] + delta  # (U, n_off)
    at = torch.searchsorted(row_key, want).clamp_(max=row_key.numel() - 1)
    return row, torch.where(row_key.index_select(0, at.view(-1)).view_as(want) == want, at, -1)


def _strides(cols: List[Tensor]) -> Tuple[List[int], int]:
    """Row-major strides of integer columns (each padded by one on both sides)."""
    strides, total = [], 1
    for size in reversed([int(c.max()) + 2 for c in cols]):
        strides.append(total)
        total *= size
    return strides[::-1], total


def _row_count(neighbor_rows: Tensor) -> int:
    """Number of occupied rows (at least 1, for the key-size bound)."""
    return max(1, neighbor_rows.size(0))


def _ranges(key: Tensor, cell_key: Tensor, width: int, s: int, neighbor_rows: Tensor, own: bool = True):
    """First sorted index and length of each cell's candidate ranges in the sorted ``key``.

    With ``own``, column 0 is the cell's own row (``cx - s .. cx + s``; the
    caller trims it to the right of each particle) and the others its neighbour
    rows; without, the neighbour rows alone. When the grid of cells is
    compact, a prefix table replaces the binary searches.
    """
    row = torch.div(cell_key, width, rounding_mode="floor")
    cx = cell_key - row * width
    target = neighbor_rows.index_select(0, row)  # (C, n_off)
    if own:
        target = torch.cat([row[:, None], target], 1)  # (C, 1 + n_off)
    base = (target.clamp(min=0) * width + cx[:, None]).t().contiguous()  # offsets contiguous: sorted queries
    cells = _row_count(neighbor_rows) * width
    if cells <= 8 * key.numel():
        first = torch.searchsorted(key, torch.arange(cells + 1, device=key.device))  # first index >= q
        lo, hi = first.index_select(0, (base - s).view(-1)), first.index_select(0, (base + s + 1).view(-1))
        lo, hi = lo.view_as(base).t(), hi.view_as(base).t()
    else:
        lo = torch.searchsorted(key, base - s).t()
        hi = torch.searchsorted(key, base + s, right=True).t()
    count = torch.where(target >= 0, hi - lo, 0)
    return lo.contiguous(), count.contiguous()


def _buckets(count: Tensor) -> Tuple[Tensor, List[Tuple[int, int, int, bool]]]:
    """Ranges ordered by bucket, and ``(start, stop, width, masked)`` of each non-empty bucket.

    Bucket ids are small integers, so the stable sort is a radix sort.
    Bucket 0 holds the empty ranges and is skipped. Ranges of one length up
    to :data:`EXACT_WIDTH` get a bucket each, longer ones share buckets 12.5%
    apart; ``masked`` says that a bucket holds ranges shorter than its width.
    Each bucket costs a few dozen tensor operations, which on a CPU weigh as
    much as :data:`BUCKET_COST` candidates: there neighbouring buckets are
    merged wherever the padded candidates cost less than the operations saved
    (:func:`_merge`), and when padding every range to the longest costs fewer
    candidates than :data:`ONE_BUCKET`, all share one bucket.
    """
    longest = int(count.max()) if count.numel() else 0
    if count.numel() * longest <= ONE_BUCKET:
        widths = [0, longest]
    else:
        widths = [0] + list(range(1, min(longest, EXACT_WIDTH) + 1))
    while widths[-1] < longest:
        widths.append(-(-widths[-1] * 9 // 8))
    widths_t = torch.tensor(widths, device=count.device)
    table = torch.searchsorted(widths_t, torch.arange(longest + 1, device=count.device))  # length -> bucket
    per_length = torch.bincount(count, minlength=longest + 1)
    masked = [False] + [w > EXACT_WIDTH or len(widths) == 2 for w in widths[1:]]
    cpu = count.device.type == "cpu"
    if cpu and len(widths) > 2:
        sizes = per_length.new_zeros(len(widths)).index_add_(0, table, per_length).tolist()
        keep = _merge(widths, sizes, BUCKET_COST)
        group = [0]  # fine -> merged bucket: merged bucket j holds fine buckets keep[j - 1] + 1 .. keep[j]
        for j, (first, last) in enumerate(zip([0] + keep, keep), 1):
            group += [j] * (last - first)
        masked = [False] + [masked[last] or last - first > 1 for first, last in zip([0] + keep, keep)]
        widths = [0] + [widths[k] for k in keep]
        table = torch.tensor(group, device=count.device).index_select(0, table)
    stops = per_length.new_zeros(len(widths)).index_add_(0, table, per_length).cumsum(0).tolist()
    table = table.to(torch.int16)  # few buckets: narrow keys sort fastest
    if cpu:  # numpy's stable sort of 16-bit keys is a radix sort
        order = torch.from_numpy(np.argsort(np.take(table.numpy(), count.numpy()), kind="stable"))
    else:
        order = torch.sort(table.index_select(0, count), stable=True).indices
    spans = [(stops[b - 1], stops[b], widths[b], masked[b]) for b in range(1, len(widths)) if stops[b] > stops[b - 1]]
    return order, spans


def _merge(widths: List[int], sizes: List[int], cost: int) -> List[int]:
    """The fine buckets that close a merged bucket, at least total cost (dynamic programming).

    Bucket ``k`` holds ``sizes[k]`` ranges of length at most ``widths[k]``
    (ascending; bucket 0, the empty ranges, is left out). A merged bucket of
    fine buckets ``i..k`` costs ``cost + widths[k] * sum(sizes[i..k])``
    candidates. Returns the ascending indices ``k`` that end a merged bucket.
    """
    n = len(widths)
    total = [0] * n  # prefix sums of sizes over buckets 1..k
    for k in range(1, n):
        total[k] = total[k - 1] + sizes[k]
    best, cut = [0.0] * n, [0] * n
    for k in range(1, n):
        options = [(best[i - 1] + cost + widths[k] * (total[k] - total[i - 1]), i) for i in range(1, k + 1)]
        best[k], cut[k] = min(options)
    keep, k = [], n - 1
    while k > 0:
        keep.append(k)
        k = cut[k] - 1
    return keep[::-1]


def _scan(lo: Tensor, count: Tensor, per_particle: int, cols: List[Tensor], source_cols: List[Tensor], r: float,
          box: Optional[Tensor], names: Tensor, source_names: Tensor) -> Pairs:
    """Test every candidate of every range; return the hits as pairs ``(names[i], source_names[j])``.

    Range ``t`` belongs to particle ``t // per_particle`` (a row of ``cols``) and
    indexes ``source_cols``. Every chunk's intermediate tensors are written
    into buffers allocated once (``out=``): on a CPU a fresh large tensor costs
    a page fault per 4 KiB, and reusing the buffers cut the scan of a 10^6-point
    cloud by 10-20%.
    """
    r2 = exact_r2(r, cols[0].dtype)
    per = periods(box, len(cols))
    chunk = CHUNK.get(cols[0].device.type, CHUNK["cuda"])
    order, buckets = _buckets(count)
    if not buckets:
        return []
    widest = max(w for _, _, w, _ in buckets)
    steps = torch.arange(widest, device=lo.device)
    # Padding lets every window lo .. lo + width - 1 exist; padded reads are masked.
    padded_cols = [torch.cat([col, col.new_zeros(widest)]) for col in source_cols]
    shapes = [(min(stop - start, max(1, chunk // width)), width) for start, stop, width, _ in buckets]
    most_rows, most = max(n for n, _ in shapes), max(n * w for n, w in shapes)

    def buffer(size: int, dtype: torch.dtype = torch.long) -> Tensor:
        return torch.empty(size, dtype=dtype, device=lo.device)

    acc, diff = buffer(most, cols[0].dtype), buffer(most, cols[0].dtype)
    image = buffer(most, cols[0].dtype) if any(p is not None for p in per) else None  # minimum-image scratch
    hit, inside, at, picked = buffer(most, torch.bool), buffer(most, torch.bool), buffer(most), buffer(most)
    i, j0, own, length = buffer(most_rows), buffer(most_rows), buffer(most_rows, cols[0].dtype), buffer(most_rows)
    found: Pairs = []
    for (start, stop, width, padded), (rows, _) in zip(buckets, shapes):  # padded: shorter ranges are masked
        # windows[k][t] = cols[k][t : t + width]: a candidate block is a copy of
        # contiguous rows, several times faster than an element-wise gather.
        windows = [col.unfold(0, width, 1) for col in padded_cols]
        for first in range(start, stop, rows):
            rng = order[first:min(stop, first + rows)]
            n = rng.numel()
            block = (n, width)
            i_, j0_ = i[:n], j0[:n]
            torch.div(rng, per_particle, rounding_mode="floor", out=i_)  # particle of each range
            torch.index_select(lo, 0, rng, out=j0_)  # first partner of each range
            sq: Optional[Tensor] = None
            for k, window in enumerate(windows):
                d = (acc if k == 0 else diff)[:n * width].view(block)
                torch.index_select(window, 0, j0_, out=d)
                d.sub_(torch.index_select(cols[k], 0, i_, out=own[:n])[:, None])
                sq = accumulate_sq(sq, d, per[k], None if image is None else image[:n * width].view(block))
            h = hit[:n * width]
            torch.le(sq, r2, out=h.view(block))
            if padded:
                torch.lt(steps[:width], torch.index_select(count, 0, rng, out=length[:n])[:, None],
                         out=inside[:n * width].view(block))
                h &= inside[:n * width]
            hits = flat_nonzero(h)
            at_ = torch.div(hits, width, rounding_mode="floor", out=at[:hits.numel()])
            pick = picked[:hits.numel()]
            a = names.index_select(0, torch.index_select(i_, 0, at_, out=pick))
            torch.index_select(j0_, 0, at_, out=pick).add_(hits).sub_(at_.mul_(width))
            found.append((a, source_names.index_select(0, pick)))
    return found
