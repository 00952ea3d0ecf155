"""The engine's edge-sized buffers and the sort of its edge keys.

On a CPU the large buffers come from numpy, whose allocator also asks the
kernel for huge pages (``madvise``) where it offers them: filling a fresh
100 MB buffer took 21 ms against 55 ms from ``torch.empty`` on the project's
2-core CPU. Torch ops then write into them with ``out=``. On GPUs everything
is plain torch.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence, Union

import numpy as np
import torch
from torch import Tensor

#: Buffers of at least this many bytes come from numpy on a CPU (numpy's own huge-page threshold).
HUGE = 1 << 22


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


def sort_keys(chunks: Iterable[Union[Tensor, Callable[[Tensor], int]]], total: int, device: torch.device) -> Tensor:
    """All ``total`` int64 keys of ``chunks``, sorted into row 1 of a ``(2, total)`` tensor whose row 0 is
    scratch the caller may reuse.

    A chunk is a tensor of keys, copied in and then released, or a writer
    ``write(rest) -> n`` that computes its ``n`` keys straight into the first
    ``n`` places of ``rest`` (``out=``), with no edge-sized temporary. On a
    CPU the keys are sorted in place by numpy's introsort (vectorised; 2-8x
    faster than ``torch.sort`` there, from 2 * 10^4 to 2 * 10^7 keys, and it
    needs no scratch memory). Keys are unique or repeat identically, so an
    unstable sort gives the same tensor as a stable one.
    """
    out = empty((2, total), torch.long, device)
    cpu = device.type == "cpu"
    row = out[1 if cpu else 0]
    at = 0
    for chunk in chunks:
        if isinstance(chunk, Tensor):
            row[at:at + chunk.numel()] = chunk
            at += chunk.numel()
        else:
            at += chunk(row[at:])
    if cpu:
        out[1].numpy().sort(kind="quicksort")
    else:  # one device-wide radix sort is fastest on GPUs
        torch.sort(out[0], out=(out[1], torch.empty_like(out[0])))
    return out


def split_keys(out: Tensor, bits: int) -> Tensor:
    """Decode sorted keys ``high << bits | low`` of :func:`sort_keys`' row 1 in place: row 0 becomes ``low``,
    row 1 ``high``."""
    torch.bitwise_and(out[1], (1 << bits) - 1, out=out[0])
    out[1].bitwise_right_shift_(bits)
    return out
