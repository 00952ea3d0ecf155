"""``radius_graph``: the exact epsilon-graph, with a choice of engines."""

from __future__ import annotations

from typing import Iterator, List, Optional

import torch
from torch import Tensor

from ..typing import Backend, Flow, OnOverflow, PerAxis
from .checks import check_batch, check_box, check_options, check_pos, check_radius
from .cluster import cluster_pairs
from .dense import dense_pairs
from .geometry import Pairs, pair_sq_dist, periodic_images, search_radius, wrap
from .hash import CellIndexOverflow, hash_pairs

#: ``backend="auto"`` uses brute force up to this many points (measured by
#: ``sparse-universe scale``: below it the dense block beats the cell sort).
DENSE_UP_TO = {"cpu": 1024, "cuda": 16384}


class NeighborOverflowError(RuntimeError):
    """A node has more neighbours than ``max_num_neighbors`` allows.

    Attributes:
        max_degree (int): the largest number of neighbours found.
        node (int): a node with that many.
        cap (int): the ``max_num_neighbors`` asked for.
    """

    def __init__(self, max_degree: int, node: int, cap: int) -> None:
        super().__init__(
            f"node {node} has {max_degree} neighbours within the radius, more than "
            f"max_num_neighbors={cap}; raise the cap, pass max_num_neighbors=None for no "
            f"limit, or on_overflow='nearest' to keep the {cap} nearest"
        )
        self.max_degree, self.node, self.cap = max_degree, node, cap


def radius_graph(
    pos: Tensor,
    r: float,
    batch: Optional[Tensor] = None,
    *,
    loop: bool = False,
    box: Optional[PerAxis] = None,
    periodic: Optional[PerAxis] = None,
    max_num_neighbors: Optional[int] = None,
    backend: Backend = "auto",
    flow: Flow = "source_to_target",
    on_overflow: OnOverflow = "raise",
) -> Tensor:
    r"""Every ordered pair ``j -> i`` with :math:`\lVert x_i - x_j \rVert \le r`.

    .. math::
        \mathcal{E} = \{(j, i) : i \ne j,\ b_i = b_j,\ d^2(x_i, x_j) \le r^2\}

    where :math:`d^2` is the squared (minimum-image) distance computed in the
    dtype of ``pos`` (float32 for half types) and :math:`r^2` is ``r * r``
    rounded once to that dtype. The test is inclusive, as the seed's
    :math:`\Gamma` is. All backends evaluate the same formula, so they return
    the *identical* tensor, sorted by target, then source.

    Args:
        pos (Tensor): positions ``(N, d)``, any ``d >= 1``.
        r (float): cut-off radius, finite and ``> 0``.
        batch (Tensor, optional): example id of every node. Need not be sorted:
            any order is handled. (default: ``None``)
        loop (bool): add ``i -> i`` for every node. (default: ``False``)
        box (Tensor or sequence, optional): ``(d,)`` side lengths of an
            orthorhombic box with a corner at the origin. (default: ``None``)
        periodic (Tensor or sequence, optional): ``(d,)`` bool mask of periodic
            axes; all axes of ``box`` when omitted. Positions are wrapped into
            the box on periodic axes and distances use the minimum image; ``r``
            must be at most half of every periodic side. (default: ``None``)
        max_num_neighbors (int, optional): ``None`` means unlimited. With a cap,
            a node above it raises :class:`NeighborOverflowError` naming the
            largest degree, unless ``on_overflow="nearest"``. (default: ``None``)
        backend (str): ``"hash"`` (cell list in PyTorch), ``"cluster"``
            (torch-cluster, made exact), ``"dense"`` (brute force) or ``"auto"``
            (dense for small ``N``, hash above). (default: ``"auto"``)
        flow (str): ``"source_to_target"`` gives ``[source, target]`` rows,
            ``"target_to_source"`` gives ``[target, source]``.
            (default: ``"source_to_target"``)
        on_overflow (str): ``"raise"``, or ``"nearest"`` to keep the
            ``max_num_neighbors`` nearest sources of each node (ties: smaller
            index first). (default: ``"raise"``)

    Returns:
        ``edge_index`` ``(2, E)`` int64 on the device of ``pos``.

    Shapes:
        pos ``(N, d)``, batch ``(N,)`` -> edge_index ``(2, E)``.

    Example:
        >>> pos = torch.tensor([[0.0, 0.0], [0.5, 0.0], [2.0, 0.0]])
        >>> radius_graph(pos, r=0.5)
        tensor([[1, 0],
                [0, 1]])
    """
    pos = check_pos(pos)
    r = check_radius(r)
    batch = check_batch(batch, pos)
    periods = check_box(box, periodic, pos)
    backend, flow, on_overflow, cap = check_options(backend, flow, on_overflow, max_num_neighbors)
    check_radius_fits(r, periods)

    work = prepare(pos, periods)
    group = batch if batch is not None else torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
    pairs = find_pairs(work, r, group, periods, backend)
    edge_index = symmetrize(pairs, work.size(0), loop, periods is not None, pos.device)
    return finish(edge_index, cap, on_overflow, flow, work, periods)


def finish(edge_index: Tensor, cap: Optional[int], on_overflow: str, flow: str, work: Tensor,
           periods: Optional[Tensor]) -> Tensor:
    """Apply ``max_num_neighbors`` and ``flow`` to a sorted ``[source, target]`` graph."""
    if cap is not None:
        edge_index = apply_cap(edge_index, cap, on_overflow, work, periods)
    return edge_index if flow == "source_to_target" else edge_index.flip(0)


def check_radius_fits(r: float, periods: Optional[Tensor]) -> None:
    """The minimum image is only unique up to half a period."""
    if periods is None:
        return
    finite = periods[torch.isfinite(periods)]
    if finite.numel() and r > float(finite.min()) / 2:
        raise ValueError(
            f"Expected 'r' <= half the smallest periodic side of 'box' ({float(finite.min()) / 2}) "
            f"(got r={r}); a larger cut-off would meet a particle's own images"
        )


def prepare(pos: Tensor, periods: Optional[Tensor]) -> Tensor:
    """Detached positions in the dtype the exact test uses, wrapped into the box."""
    work = pos.detach()
    if work.dtype in (torch.float16, torch.bfloat16):
        work = work.float()
    return wrap(work, periods)


def find_pairs(work: Tensor, r: float, group: Tensor, periods: Optional[Tensor],
               backend: str) -> Pairs:
    """Each unordered exact pair once (in either orientation), in original indices."""
    auto = backend == "auto"
    if auto:
        small = work.size(0) <= DENSE_UP_TO.get(work.device.type, DENSE_UP_TO["cuda"])
        backend = "dense" if small else "hash"
    if backend == "dense":
        return dense_pairs(work, r, group, periods)
    cell_pos, fpos, labels = work.to(torch.float64), work, None
    if periods is not None and bool(torch.isfinite(periods).any()):
        cell_pos, labels = periodic_images(work, periods, reach=search_radius(r, work.dtype, work.size(1)))
        fpos, group = work.index_select(0, labels), group.index_select(0, labels)
    try:
        search = hash_pairs if backend == "hash" else cluster_pairs
        return search(cell_pos, r, group, fpos, periods, labels)
    except CellIndexOverflow:
        if not auto:
            raise
        return cluster_pairs(cell_pos, r, group, fpos, periods, labels)


def symmetrize(pairs: Pairs, n: int, loop: bool, dedupe: bool, device: torch.device) -> Tensor:
    """Both directions of every pair (plus loops) as ``[source, target]``, sorted.

    Each edge is the key ``target * n + source``; the output is the sorted keys,
    split back into rows. Periodic images can find a pair twice, so ``dedupe``
    drops repeated keys. ``pairs`` is emptied as it is consumed, so its memory
    is released while the output fills.
    """
    half = sum(a.numel() for a, _ in pairs)
    total = 2 * half + (n if loop else 0)
    out = torch.empty(2, total, dtype=torch.long, device=device)
    chunks = _key_chunks(pairs, n, loop, device)
    if device.type == "cpu":
        _sort_in_blocks(list(chunks), out, n)
    else:  # one device-wide radix sort is fastest on GPUs
        at = 0
        for key in chunks:
            out[0, at:at + key.numel()] = key
            at += key.numel()
        torch.sort(out[0], stable=True, out=(out[1], torch.empty_like(out[0])))
    if dedupe:
        out = torch.unique_consecutive(out[1]).expand(2, -1).clone()
    torch.remainder(out[1], n, out=out[0])
    out[1].div_(n, rounding_mode="floor")
    return out


def _key_chunks(pairs: Pairs, n: int, loop: bool, device: torch.device) -> Iterator[Tensor]:
    """Keys of both directions of each chunk; each pair chunk is released once used."""
    while pairs:
        a, b = pairs.pop(0)
        yield torch.cat([a * n + b, b * n + a])
    if loop:
        yield torch.arange(n, device=device) * (n + 1)


#: Keys per block of the CPU sort: small enough to sort in cache.
SORT_BLOCK = 1 << 19


def _sort_in_blocks(chunks: List[Tensor], out: Tensor, n: int) -> None:
    """Sort all keys into ``out[1]`` without one large sort (CPU).

    A sort of 2 * 10^7 keys allocates hundreds of MB of scratch, and on a CPU
    the page faults of fresh memory cost more than the sorting. Instead, each
    chunk is grouped by block (a fixed range of targets; a one-pass radix sort
    of narrow block ids) and appended to its block's slice of ``out[0]``; each
    block is then sorted in cache into ``out[1]``. Keys are unique (or repeat identically), so the result is the
    same tensor a single sort gives.
    """
    total = out.size(1)
    blocks = max(1, -(-total // SORT_BLOCK))
    span = -(-n // blocks) * n  # key range of one block: a range of targets
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


def apply_cap(edge_index: Tensor, cap: int, on_overflow: str, work: Tensor,
              periods: Optional[Tensor]) -> Tensor:
    """Enforce ``max_num_neighbors`` on a ``[source, target]`` graph sorted by target."""
    source, target = edge_index
    degree = torch.bincount(target, minlength=work.size(0))
    if degree.numel() == 0 or int(degree.max()) <= cap:
        return edge_index
    if on_overflow == "raise":
        node = int(torch.argmax(degree))
        raise NeighborOverflowError(int(degree[node]), node, cap)
    # Order by (target, distance, source): stable sorts keep the earlier keys.
    d2 = pair_sq_dist(work, target, source, periods)
    by_dist = torch.sort(d2, stable=True).indices
    order = by_dist.index_select(0, torch.sort(target.index_select(0, by_dist), stable=True).indices)
    start = torch.cumsum(degree, 0) - degree
    rank = torch.arange(order.numel(), device=order.device) - start.index_select(0, target.index_select(0, order))
    keep = torch.sort(order[rank < cap]).values
    return edge_index.index_select(1, keep)
