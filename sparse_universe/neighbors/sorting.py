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
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

#: Buffers of at least this many bytes come from numpy on a CPU (numpy's own huge-page threshold).
HUGE = 1 << 22
#: Keys from which :func:`sort_keys` sorts bins in parallel on a CPU, and the most bins.
PARALLEL_SORT, MAX_BINS = 1 << 20, 8


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


Chunk = Union[Tensor, Callable[[Tensor], int]]
Part = Tuple[int, Tensor, Tensor, Optional[Tensor]]


def key_bins(total: int, device: torch.device) -> int:
    """How many bins :func:`sort_keys` sorts ``total`` keys in: one per CPU thread (at most
    :data:`MAX_BINS`) when there are at least :data:`PARALLEL_SORT` keys, else one (and one on a GPU)."""
    if device.type != "cpu" or total < PARALLEL_SORT:
        return 1
    return max(1, min(torch.get_num_threads(), MAX_BINS))


def edge_parts(target: Tensor, source: Tensor, keep: Optional[Tensor], limit: int, bins: int) -> List[Part]:
    """The candidate edges ``source -> target`` (``0 <= target < limit``) that ``keep`` allows, as parts
    ``(bin, target, source, places)``, ``places`` ``None`` for all of them (one bin, nothing dropped).

    Bin ``b`` holds the targets in ``[b w, (b + 1) w)``, ``w`` the least power of two with ``bins w >=
    limit`` (a shift finds the bin), so bins are ordered by key.
    """
    if bins == 1:
        return [(0, target, source, None if keep is None else flat_nonzero(keep))]
    which = torch.bitwise_right_shift(target, (-(-limit // bins) - 1).bit_length())
    if keep is not None:
        which.masked_fill_(~keep, bins)
    return [(b, target, source, flat_nonzero(which == b)) for b in range(bins)]


def part_sizes(parts: Sequence[Part], bins: int) -> List[int]:
    """The number of edges in each bin."""
    sizes = [0] * bins
    for b, target, _, places in parts:
        sizes[b] += target.numel() if places is None else places.numel()
    return sizes


def edge_keys(parts: List[Part], bits: int, table: Optional[Tensor] = None) -> Iterator[Tuple[int, Chunk]]:
    """``(bin, writer)`` of the keys ``target << bits | low`` of every part, ``low`` the source or
    ``table[source]``; ``parts`` is emptied as it is written, releasing its memory."""

    def writer(target: Tensor, source: Tensor, places: Optional[Tensor]) -> Callable[[Tensor], int]:
        def write(rest: Tensor) -> int:
            t, s = (target, source) if places is None else (target.index_select(0, places),
                                                           source.index_select(0, places))
            keys = rest[:s.numel()]
            if table is None:
                return torch.add(s, t, alpha=1 << bits, out=keys).numel()  # the bits are disjoint: + is |
            return torch.index_select(table, 0, s, out=keys).add_(t, alpha=1 << bits).numel()
        return write

    while parts:
        b, *part = parts.pop(0)
        yield b, writer(*part)


def sort_keys(chunks: Iterable[Tuple[int, Chunk]], sizes: Sequence[int], device: torch.device) -> Tensor:
    """The keys of ``chunks``, ``sizes[b]`` in bin ``b``, sorted into row 1 of a ``(2, sum(sizes))``
    tensor whose row 0 is scratch the caller may reuse.

    A chunk ``(b, keys)`` goes to bin ``b``; every key of a bin must be below
    every key of the next, so that the bins, each sorted, are the sorted
    keys. ``keys`` is a tensor, copied in and then released, or a writer
    ``write(rest) -> n`` that computes its ``n`` keys straight into the first
    ``n`` places of ``rest`` (``out=``), with no edge-sized temporary.

    On a CPU each bin is sorted in place by numpy's introsort (vectorised;
    2-8x faster than ``torch.sort`` there, from 2 * 10^4 to 2 * 10^7 keys, and
    it needs no scratch memory), the bins in parallel threads (numpy releases
    the GIL; see :func:`key_bins`). Keys are unique or repeat identically, so
    an unstable sort gives the same tensor as a stable one, whatever the bins.
    """
    ends = np.cumsum(sizes).tolist()
    out = empty((2, ends[-1] if ends else 0), torch.long, device)
    cpu = device.type == "cpu"
    row = out[1 if cpu else 0]
    at = [end - size for end, size in zip(ends, sizes)]
    for b, chunk in chunks:
        if isinstance(chunk, Tensor):
            row[at[b]:at[b] + chunk.numel()] = chunk
            at[b] += chunk.numel()
        else:
            at[b] += chunk(row[at[b]:ends[b]])
    if at != ends:
        raise RuntimeError(f"sort_keys: bins were promised {list(sizes)} keys but ended at {at} of {ends}")
    if not cpu:  # one device-wide radix sort is fastest on GPUs
        torch.sort(out[0], out=(out[1], torch.empty_like(out[0])))
        return out
    parts = [out[1, end - size:end].numpy() for end, size in zip(ends, sizes) if size]
    threads = [threading.Thread(target=part.sort) for part in parts[1:]]
    for thread in threads:
        thread.start()
    if parts:
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
