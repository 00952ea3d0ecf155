"""The engine's edge-sized buffers, the sort of its edge keys, and the other CPU paths through numpy.

On a CPU the large buffers come from numpy, whose allocator also asks the
kernel for huge pages (``madvise``) where it offers them: filling a fresh
100 MB buffer took 21 ms against 55 ms from ``torch.empty`` on the project's
2-core CPU. Torch ops then write into them with ``out=``. numpy also sorts
and finds nonzero entries several times faster than torch on a CPU. On GPUs
everything is plain torch.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

#: Buffers of at least this many bytes come from numpy on a CPU (numpy's own huge-page threshold).
HUGE = 1 << 22
#: Keys from which :func:`sort_keys` sorts parts in parallel on a CPU, and the most parts.
PARALLEL_SORT, MAX_PARTS = 1 << 20, 8


def empty(shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> Tensor:
    """``torch.empty(shape)``; from numpy when large and on a CPU.

    Such a tensor behaves as any other (it can be shared between processes,
    pinned, saved), except that, like every ``torch.from_numpy`` tensor, its
    storage cannot be resized in place (``resize_``).
    """
    probe = torch.empty((), dtype=dtype)
    if device.type != "cpu" or int(np.prod(shape)) * probe.element_size() < HUGE:
        return torch.empty(tuple(shape), dtype=dtype, device=device)
    return torch.from_numpy(np.empty(tuple(shape), dtype=probe.numpy().dtype))


def flat_nonzero(mask: Tensor) -> Tensor:
    """Indices of the true entries of a contiguous 1-D bool ``mask``, ascending (int64).

    On a CPU numpy's ``flatnonzero`` is 3x faster than ``torch.nonzero`` on
    two threads (10^6 entries, 19% true).
    """
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return mask.nonzero().view(-1)


Chunk = Callable[[Tensor], int]
#: Candidate keys ``high << shift | low``: high and low parts, and the places kept (``None``: all).
Part = Tuple[Tensor, Tensor, Optional[Tensor]]


def kept_places(mask: Tensor) -> Optional[Tensor]:
    """:func:`flat_nonzero` of ``mask``, or ``None`` when every entry is kept."""
    places = flat_nonzero(mask)
    return None if places.numel() == mask.numel() else places


def edge_keys(parts: List[Part], *forms: Tuple[int, Optional[Tensor]]) -> Iterator[Chunk]:
    """Writers of the keys of every part in each form ``(shift, table)``: ``high << shift | low``, or
    ``high << shift | table[low]``; ``parts`` is emptied as it is written, releasing its memory."""

    def writer(high: Tensor, low: Tensor, places: Optional[Tensor], shift: int,
               table: Optional[Tensor]) -> Callable[[Tensor], int]:
        def write(rest: Tensor) -> int:
            h, lo = (high, low) if places is None else (high.index_select(0, places), low.index_select(0, places))
            keys = rest[:lo.numel()]
            if table is None:
                return torch.add(lo, h, alpha=1 << shift, out=keys).numel()  # the bits are disjoint: + is |
            return torch.index_select(table, 0, lo, out=keys).add_(h, alpha=1 << shift).numel()
        return write

    while parts:
        part = parts.pop(0)
        for shift, table in forms:
            yield writer(*part, shift, table)


def part_size(parts: Sequence[Part]) -> int:
    """The number of keys kept in ``parts`` (in one form)."""
    return sum(high.numel() if places is None else places.numel() for high, _, places in parts)


def sort_keys(chunks: Iterable[Chunk], total: int, device: torch.device) -> Tensor:
    """All ``total`` int64 keys of ``chunks``, sorted into row 1 of a ``(2, total)`` tensor whose row 0 is
    scratch the caller may reuse.

    A chunk is a writer ``write(rest) -> n`` that computes its ``n`` keys
    straight into the first ``n`` places of ``rest`` (``out=``), with no
    edge-sized temporary (:func:`edge_keys`).

    On a CPU the keys are sorted in place by numpy (vectorised; 2-8x faster
    than ``torch.sort`` there, from 2 * 10^4 to 2 * 10^7 keys, with no scratch
    memory). From :data:`PARALLEL_SORT` keys on, numpy's selection first
    splits them at the quantiles into one part per torch thread (at most
    :data:`MAX_PARTS`), and the parts are sorted in parallel threads (numpy
    releases the GIL): the selection costs about a tenth of the sort. Keys are
    unique or repeat identically, so an unstable sort gives the same tensor
    as a stable one, whatever the parts.
    """
    out = empty((2, total), torch.long, device)
    cpu = device.type == "cpu"
    row = out[1 if cpu else 0]
    at = 0
    for chunk in chunks:
        at += chunk(row[at:])
    if not cpu:  # one device-wide radix sort is fastest on GPUs
        torch.sort(out[0], out=(out[1], torch.empty_like(out[0])))
        return out
    keys = out[1].numpy()
    count = min(torch.get_num_threads(), MAX_PARTS) if total >= PARALLEL_SORT else 1
    if count == 1:
        keys.sort()
        return out
    cuts = [total * k // count for k in range(1, count)]
    keys.partition(cuts)
    parts = [keys[a:b] for a, b in zip([0] + cuts, cuts + [total])]
    threads = [threading.Thread(target=part.sort) for part in parts[1:]]
    for thread in threads:
        thread.start()
    parts[0].sort()
    for thread in threads:
        thread.join()
    return out


def split_keys(out: Tensor, bits: int) -> Tensor:
    """Decode sorted keys ``high << bits | low`` of :func:`sort_keys`' row 1 in place: row 0 becomes ``low``,
    row 1 ``high``."""
    torch.bitwise_and(out[1], (1 << bits) - 1, out=out[0])
    out[1].bitwise_right_shift_(bits)
    return out
