"""Sorting the engine's edge keys: one radix sort on GPUs, cache-sized blocks on CPUs."""

from __future__ import annotations

from typing import Iterable, List

import torch
from torch import Tensor

#: Keys per block of the CPU sort: small enough to sort in cache.
SORT_BLOCK = 1 << 19


def sort_keys(chunks: Iterable[Tensor], total: int, key_range: int, device: torch.device) -> Tensor:
    """All ``total`` keys of ``chunks`` (int64 in ``[0, key_range)``), sorted into row 1 of a ``(2, total)``
    tensor whose row 0 is scratch the caller may reuse.

    Chunks are consumed as they are read, so their memory is released while the output fills.
    """
    out = torch.empty(2, total, dtype=torch.long, device=device)
    if device.type == "cpu":
        _sort_in_blocks(list(chunks), out, key_range)
    else:  # one device-wide radix sort is fastest on GPUs
        at = 0
        for key in chunks:
            out[0, at:at + key.numel()] = key
            at += key.numel()
        torch.sort(out[0], stable=True, out=(out[1], torch.empty_like(out[0])))
    return out


def _sort_in_blocks(chunks: List[Tensor], out: Tensor, key_range: int) -> None:
    """Sort all keys into ``out[1]`` without one large sort (CPU).

    A sort of 2 * 10^7 keys allocates hundreds of MB of scratch, and on a CPU
    the page faults of fresh memory cost more than the sorting. Instead, each
    chunk is grouped by block (a fixed range of keys; a one-pass radix sort of
    narrow block ids) and appended to its block's slice of ``out[0]``; each
    block is then sorted in cache into ``out[1]``. Equal keys are identical, so
    the result is the same tensor a single sort gives.
    """
    total = out.size(1)
    blocks = max(1, -(-total // SORT_BLOCK))
    span = max(1, -(-key_range // blocks))  # key range of one block
    narrow = torch.int16 if blocks < 2**15 else torch.int32  # one radix pass
    ids = [torch.div(key, span, rounding_mode="floor").to(narrow) for key in chunks]
    sizes = [torch.bincount(i.long(), minlength=blocks) for i in ids]
    counts = torch.stack(sizes).sum(0) if sizes else torch.zeros(blocks, dtype=torch.long)
    starts = (torch.cumsum(counts, 0) - counts).tolist()
    fill = list(starts)
    for c, key in enumerate(chunks):
        key = key.index_select(0, torch.sort(ids[c], stable=True).indices)  # grouped by block
        cut = [0] + torch.cumsum(sizes[c], 0).tolist()
        for blk in range(blocks):
            size = cut[blk + 1] - cut[blk]
            if size:
                out[0, fill[blk]:fill[blk] + size] = key[cut[blk]:cut[blk + 1]]
                fill[blk] += size
        chunks[c] = ids[c] = key.new_empty(0)  # release as we go
    for first, size in zip(starts, counts.tolist()):
        if size:
            torch.sort(out[0, first:first + size], out=(out[1, first:first + size], torch.empty(
                size, dtype=torch.long, device=out.device)))
