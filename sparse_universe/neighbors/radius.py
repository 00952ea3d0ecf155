"""``radius_graph``: the exact epsilon-graph, with a choice of engines."""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple, Union

import torch
from torch import Tensor

from ..typing import Backend, Flow, OnOverflow, PerAxis
from .cells import Cells, check_cells, lex_sign, periodic_edges, shift_sq_dist, shift_vectors
from .checks import check_batch, check_box, check_options, check_pos, check_radius
from .cluster import cluster_bipartite, cluster_pairs
from .dense import dense_bipartite, dense_pairs, pairs_per_example, pairs_within_examples
from .geometry import Pairs, image_pairs, pair_sq_dist, periodic_images, search_radius, wrap
from .hash import CellIndexOverflow, example_bipartite, example_pairs, hash_bipartite, hash_pairs
from .sorting import Part, edge_keys, empty, part_size, sort_keys, split_keys

#: ``backend="auto"`` on CUDA uses brute force up to this many points (measured on an H100 by
#: ``sparse-universe scale``: below it the dense block beats the cell sort).
DENSE_UP_TO = 16384
#: ``backend="auto"`` on a CPU compares estimated costs in seconds (measured on the project's 2-core CPU,
#: 300 to 8,000 points in one cloud and batches of 4-512 molecules of 10-300 atoms): brute force per
#: pair in one example (a broadcast block); each example as one cell of the cell list (fixed, per point,
#: per pair inside the examples, :func:`~.hash.example_pairs`); and the spatial cell list (fixed, per
#: point). Crossovers: about 450 points in one cloud; in a batch of N atoms, examples as cells win while
#: the pairs inside them number fewer than about 180,000 + 100 N.
CPU_COST = {"dense_single": 20e-9, "examples_fixed": 0.5e-3, "examples_point": 0.4e-6, "examples_pair": 6e-9,
            "hash_fixed": 1.6e-3, "hash_point": 1.0e-6}


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
    cell: Optional[Tensor] = None,
    pbc: Optional[PerAxis] = None,
    return_shifts: bool = False,
    half: bool = False,
    max_num_neighbors: Optional[int] = None,
    backend: Backend = "auto",
    flow: Flow = "source_to_target",
    on_overflow: OnOverflow = "raise",
) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    r"""Every ordered pair ``j -> i`` with :math:`\lVert x_i - x_j \rVert \le r`.

    .. math::
        \mathcal{E} = \{(j, i) : i \ne j,\ b_i = b_j,\ d^2(x_i, x_j) \le r^2\}

    where :math:`d^2` is the squared (minimum-image) distance computed in the
    dtype of ``pos`` (float32 for half types) and :math:`r^2` is ``r * r``
    rounded once to that dtype. The test is inclusive, as the seed's
    :math:`\Gamma` is. All backends evaluate the same formula, so they return
    the *identical* tensor, sorted by target, then source.

    **Periodic cells** (``cell``, ``pbc``; ASE's conventions, see
    :mod:`~sparse_universe.neighbors.cells`): every image is a candidate, so the
    edges are triples ``(i, j, S)``, ``j -> i`` with the neighbour at
    ``pos[j] + S @ cell``, unique per ``(i, j, S)``, for any cut-off (a
    particle may neighbour its own images) and positions anywhere (shifts are
    relative to the coordinates given). They are sorted by target, source,
    then shift (lexicographic); ``return_shifts=True`` returns ``S``.
    ``box`` is the older orthorhombic shorthand: the *minimum* image only
    (one edge per pair, ``r`` at most half a side) and no shifts. For
    ``r`` below half a side, ``cell=torch.diag(box)`` gives the same pairs,
    up to ties at exactly half a side.

    Args:
        pos (Tensor): positions ``(N, d)``, any ``d >= 1``.
        r (float): cut-off radius, finite and ``> 0``.
        batch (Tensor, optional): example id of every node. Need not be sorted:
            any order is handled. (default: ``None``)
        loop (bool): add ``i -> i`` (shift 0) for every node. (default: ``False``)
        box (Tensor or sequence, optional): ``(d,)`` side lengths of an
            orthorhombic box with a corner at the origin; ``inf`` makes an
            axis open. (default: ``None``)
        periodic (Tensor or sequence, optional): ``(d,)`` bool mask of periodic
            axes; all axes of ``box`` when omitted. Positions are wrapped into
            the box on periodic axes and distances use the minimum image; ``r``
            must be at most half of every periodic side. (default: ``None``)
        cell (Tensor, optional): ``(d, d)`` lattice vectors as rows, or
            ``(B, d, d)``, one per example of ``batch``. (default: ``None``)
        pbc (Tensor or sequence, optional): ``(d,)`` or ``(B, d)`` bool mask of
            the periodic axes of ``cell``; all axes when omitted. Open axes get
            ``S = 0``; their lattice vectors may be zero. (default: ``None``)
        return_shifts (bool): also return the integer shifts ``S`` ``(E, d)``
            (zeros without a cell; refused with ``box``). (default: ``False``)
        half (bool): a half list: of the two edges ``(i, j, S)`` and
            ``(j, i, -S)`` of a pair only the one with ``i < j``, or ``i == j``
            and ``S`` lexicographically positive (loops stay). Still sorted.
            Not with ``max_num_neighbors``. (default: ``False``)
        max_num_neighbors (int, optional): ``None`` means unlimited. With a cap,
            a node above it raises :class:`NeighborOverflowError` naming the
            largest degree, unless ``on_overflow="nearest"``. (default: ``None``)
        backend (str): ``"hash"`` (cell list in PyTorch), ``"examples"`` (the
            same scan with each example one cell: for batches of small
            molecules), ``"cluster"`` (torch-cluster, made exact), ``"dense"``
            (brute force, block-diagonal over the examples of a batch; the
            reference) or ``"auto"`` (whichever is cheaper by the measured costs
            in :data:`CPU_COST`; on CUDA dense up to :data:`DENSE_UP_TO`
            points). (default: ``"auto"``)
        flow (str): ``"source_to_target"`` gives ``[source, target]`` rows,
            ``"target_to_source"`` gives ``[target, source]``; a shift always
            belongs to the source's image. (default: ``"source_to_target"``)
        on_overflow (str): ``"raise"``, or ``"nearest"`` to keep the
            ``max_num_neighbors`` nearest sources of each node (ties: smaller
            index first). (default: ``"raise"``)

    Returns:
        ``edge_index`` ``(2, E)`` int64 on the device of ``pos``; with
        ``return_shifts``, ``(edge_index, shifts)``.

    Shapes:
        pos ``(N, d)``, batch ``(N,)``, cell ``(d, d)`` or ``(B, d, d)``
        -> edge_index ``(2, E)``, shifts ``(E, d)``.

    Example:
        >>> pos = torch.tensor([[0.0, 0.0], [0.5, 0.0], [2.0, 0.0]])
        >>> radius_graph(pos, r=0.5)
        tensor([[1, 0],
                [0, 1]])
        >>> radius_graph(torch.zeros(1, 1), 1.5, cell=torch.eye(1), return_shifts=True)
        (tensor([[0, 0, 0, 0],
                [0, 0, 0, 0]]), tensor([[-1],
                [ 1],
                [-1],
                [ 1]]))
    """
    pos = check_pos(pos)
    r = check_radius(r)
    batch = check_batch(batch, pos)
    if box is not None and (cell is not None or pbc is not None):
        raise ValueError("Got both 'box' and 'cell'/'pbc': give the periodic box one way (cell=torch.diag(box))")
    periods = check_box(box, periodic, pos)
    cells = check_cells(cell, pbc, pos, batch)
    backend, flow, on_overflow, cap = check_options(backend, flow, on_overflow, max_num_neighbors)
    if return_shifts and periods is not None:
        raise ValueError("Expected 'cell' with return_shifts=True ('box' gives minimum-image edges without "
                         "shifts; pass cell=torch.diag(box) instead)")
    check_radius_fits(r, periods)
    if half and cap is not None:
        raise ValueError("Expected max_num_neighbors=None with half=True (a half list has no degree to cap)")

    work = prepare(pos, periods)
    group = batch if batch is not None else torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
    if cells is not None:
        edge_index, shifts = periodic_graph(work, r, group, cells, loop, backend)
        edge_index, shifts = finish(edge_index, cap, on_overflow, "source_to_target", work.size(0),
                                    lambda e: edge_sq_dist(work, e, shifts, cells), shifts)
    else:
        pairs = find_pairs(work, r, group, periods, backend)
        edge_index = symmetrize(pairs, work.size(0), loop, periods is not None, pos.device)
        edge_index, _ = finish(edge_index, cap, on_overflow, "source_to_target", work.size(0),
                               lambda e: pair_sq_dist(work, e[1], e[0], periods))
        shifts = edge_index.new_zeros(edge_index.size(1), pos.size(1)) if return_shifts or half else None
    if half:
        keep = first_of_pair(edge_index, shifts)
        edge_index, shifts = edge_index[:, keep], shifts[keep]
    if flow == "target_to_source":
        edge_index = edge_index.flip(0)
    return (edge_index, shifts) if return_shifts else edge_index


def first_of_pair(edge_index: Tensor, shifts: Tensor) -> Tensor:
    """Mask of the edges ``j -> i`` with ``i < j``, or ``i == j`` and ``S >= 0`` lexicographically."""
    source, target = edge_index
    return (target < source) | ((target == source) & (lex_sign(shifts) >= 0))


def radius(
    x: Tensor,
    y: Tensor,
    r: float,
    batch_x: Optional[Tensor] = None,
    batch_y: Optional[Tensor] = None,
    *,
    cell: Optional[Tensor] = None,
    pbc: Optional[PerAxis] = None,
    return_shifts: bool = False,
    max_num_neighbors: Optional[int] = None,
    backend: Backend = "auto",
    on_overflow: OnOverflow = "raise",
) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    r"""For each query ``y[i]``, every source ``x[j]`` with :math:`\lVert y_i - x_j \rVert \le r`.

    The bipartite search (probe grids, point-cloud models, halo exchange), with
    torch-cluster's orientation: row 0 indexes ``y``, row 1 ``x``, sorted by
    query, then source (then shift). The same exact test and periodic options
    as :func:`radius_graph` (``cell`` and ``pbc`` indexed by the batch ids of
    both sets); a source and a query at the same place are neighbours.
    ``max_num_neighbors`` counts sources per query. With shifts,
    ``x[j] - y[i] + S @ cell`` is the vector from the query to the source's
    image.

    Args:
        x (Tensor): sources ``(N, d)``.
        y (Tensor): queries ``(M, d)``.
        r (float): cut-off radius.
        batch_x, batch_y (Tensor, optional): example ids; a query meets only
            sources of its example. (default: ``None``)
        cell, pbc, return_shifts, max_num_neighbors, backend, on_overflow:
            as in :func:`radius_graph`.

    Returns:
        ``(2, E)`` ``[query, source]``; with ``return_shifts``, also ``(E, d)``.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [2.0]])
        >>> radius(x, torch.tensor([[0.9]]), 0.5)
        tensor([[0],
                [1]])
    """
    x, y = check_pos(x, "x"), check_pos(y, "y")
    if x.size(1) != y.size(1) or x.dtype != y.dtype or x.device != y.device:
        raise ValueError(f"Expected 'x' and 'y' in the same dimension, dtype and device (got {tuple(x.shape)} "
                         f"{x.dtype} on {x.device} and {tuple(y.shape)} {y.dtype} on {y.device})")
    r = check_radius(r)
    batch_x, batch_y = check_batch(batch_x, x, "batch_x"), check_batch(batch_y, y, "batch_y")
    if (batch_x is None) != (batch_y is None):
        raise ValueError("Expected both 'batch_x' and 'batch_y', or neither")
    backend, _, on_overflow, cap = check_options(backend, "source_to_target", on_overflow, max_num_neighbors)
    cells_x, cells_y = check_cells(cell, pbc, x, batch_x), check_cells(cell, pbc, y, batch_y)
    source, query = prepare(x, None), prepare(y, None)
    group_x = batch_x if batch_x is not None else torch.zeros(x.size(0), dtype=torch.long, device=x.device)
    group_y = batch_y if batch_y is not None else torch.zeros(y.size(0), dtype=torch.long, device=y.device)
    search = bipartite_search(backend)
    if cells_x is not None:  # edges as [source, target] throughout; the output flips them
        edges, shifts = periodic_edges(query, source, r, cells_y, cells_x, group_y, group_x, search)
        distance = lambda e: edge_sq_dist(query, e, shifts, cells_x, source)  # noqa: E731
    else:
        bits = max(1, (source.size(0) - 1).bit_length())
        parts: List[Part] = [(q, s, None) for q, s in search(query, source, r, group_y, group_x)]
        total = part_size(parts)
        edges = split_keys(sort_keys(edge_keys(parts, (bits, None)), total, query.device), bits)  # [source, query]
        shifts = edges.new_zeros(edges.size(1), x.size(1))
        distance = lambda e: pair_sq_dist(query, e[1], e[0], None, source)  # noqa: E731
    edges, shifts = finish(edges, cap, on_overflow, "target_to_source", query.size(0), distance, shifts)
    return (edges, shifts) if return_shifts else edges


def periodic_graph(work: Tensor, r: float, group: Tensor, cells: Cells, loop: bool,
                   backend: str) -> Tuple[Tensor, Tensor]:
    """``[source, target]`` edges of every image within ``r`` and their shifts, sorted."""
    search = bipartite_search(backend)
    return periodic_edges(work, work, r, cells, cells, group, group, search, drop_self=True, loop=loop,
                          half_search=lambda pos, r, group: find_pairs(pos, r, group, None, backend))


def edge_sq_dist(target_pos: Tensor, edge_index: Tensor, shifts: Tensor, cells: Cells,
                 source_pos: Optional[Tensor] = None) -> Tensor:
    """The exact test's squared length of every ``[source, target]`` edge with its shift."""
    source_pos = target_pos if source_pos is None else source_pos
    j, i = edge_index
    shift = shift_vectors(shifts, cells.cell.to(target_pos.dtype), cells.which.index_select(0, j))
    return shift_sq_dist(target_pos, source_pos, i, j, shift)


def bipartite_search(backend: str):
    """The bipartite backend ``(query, source, r, query_group, source_group) -> pairs`` to use."""
    if backend == "dense":
        return dense_bipartite
    if backend == "cluster":
        return cluster_bipartite

    def search(query: Tensor, source: Tensor, r: float, query_group: Tensor, source_group: Tensor) -> Pairs:
        choice = auto_bipartite(query_group, source_group) if backend == "auto" else backend
        if choice != "hash":
            return (dense_bipartite if choice == "dense" else example_bipartite)(
                query, source, r, query_group, source_group)
        try:
            return hash_bipartite(query, source, r, query_group, source_group)
        except CellIndexOverflow:
            if backend == "hash":
                raise
            return cluster_bipartite(query, source, r, query_group, source_group)
    return search


def finish(edge_index: Tensor, cap: Optional[int], on_overflow: str, flow: str, num_targets: int,
           sq_dist: Callable[[Tensor], Tensor], shifts: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
    """Apply ``max_num_neighbors`` and ``flow`` to a sorted ``[source, target]`` graph (and its shifts).

    ``sq_dist(edge_index)`` gives the exact test's squared lengths, needed only
    to keep the nearest neighbours.
    """
    if cap is not None:
        keep = capped(edge_index[1], num_targets, cap, on_overflow, lambda: sq_dist(edge_index))
        if keep is not None:
            edge_index = edge_index.index_select(1, keep)
            shifts = None if shifts is None else shifts.index_select(0, keep)
    return (edge_index if flow == "source_to_target" else edge_index.flip(0)), shifts


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
        backend = auto_backend(work.size(0), group)
    if backend == "dense":
        return dense_pairs(work, r, group, periods)
    if backend == "examples":
        return example_pairs(work, r, group, periods)
    cell_pos, fpos, labels = work.to(torch.float64), work, None
    if periods is not None and bool(torch.isfinite(periods).any()):
        cell_pos, labels = periodic_images(work, periods, reach=search_radius(r, work.dtype, work.size(1)))
        fpos, group = work.index_select(0, labels), group.index_select(0, labels)
    try:
        pairs = (hash_pairs if backend == "hash" else cluster_pairs)(cell_pos, r, group, fpos, periods)
    except CellIndexOverflow:
        if not auto:
            raise
        pairs = cluster_pairs(cell_pos, r, group, fpos, periods)
    return pairs if labels is None else image_pairs(pairs, labels, work.size(0))


def auto_backend(n: int, group: Tensor) -> str:
    """``auto``'s choice for a graph, by estimated cost (one host sync): ``"dense"`` (brute force, one
    example), ``"examples"`` (each example one cell) or ``"hash"`` (the spatial cell list)."""
    if group.device.type != "cpu":
        return "dense" if n <= DENSE_UP_TO else "hash"
    spatial = _hash_cost(n)
    if n < 2 or int(group.max()) == int(group.min()):
        return "dense" if CPU_COST["dense_single"] * n * n / 2 <= spatial else "hash"
    return "examples" if _examples_cost(n, pairs_within_examples(group)) <= spatial else "hash"


def auto_bipartite(query_group: Tensor, source_group: Tensor) -> str:
    """``auto``'s choice for a bipartite search, by the same estimated costs (one host sync)."""
    n = query_group.numel() + source_group.numel()
    if query_group.device.type != "cpu":
        return "dense" if query_group.numel() * source_group.numel() <= DENSE_UP_TO ** 2 else "hash"
    return "examples" if _examples_cost(n, pairs_per_example(query_group, source_group)) <= _hash_cost(n) else "hash"


def _hash_cost(n: int) -> float:
    return CPU_COST["hash_fixed"] + CPU_COST["hash_point"] * n


def _examples_cost(n: int, pairs: int) -> float:
    return CPU_COST["examples_fixed"] + CPU_COST["examples_point"] * n + CPU_COST["examples_pair"] * pairs


def symmetrize(pairs: Pairs, n: int, loop: bool, dedupe: bool, device: torch.device) -> Tensor:
    """Both directions of every pair (plus loops) as ``[source, target]``, sorted.

    Each edge is the key ``target << bits | source`` (``2^bits >= n``, so a mask
    and a shift decode it); the output is the sorted keys, split back into
    rows. In a periodic box a pair at a tie (exactly half a period) can come
    twice through two images (see :func:`~.geometry.image_pairs`), so
    ``dedupe`` drops repeated keys; it costs one pass when there are none.
    ``pairs`` is emptied as it is consumed, so its memory is released while
    the output fills.
    """
    bits = max(1, (n - 1).bit_length())
    parts: List[Part] = []
    while pairs:
        a, b = pairs.pop(0)
        parts += [(a, b, None), (b, a, None)]
    if loop:
        ids = torch.arange(n, device=device)
        parts.append((ids, ids, None))
    total = part_size(parts)
    out = sort_keys(edge_keys(parts, (bits, None)), total, device)
    if dedupe and total > 1:
        first = empty((total,), torch.bool, device)  # the first of each run of equal keys
        first[0] = True
        torch.ne(out[1, 1:], out[1, :-1], out=first[1:])
        if not bool(first.all()):
            keys, out = out[1], empty((2, int(first.sum())), torch.long, device)
            torch.masked_select(keys, first, out=out[1])
    return split_keys(out, bits)


def capped(target: Tensor, num_targets: int, cap: int, on_overflow: str,
           sq_dist: Callable[[], Tensor]) -> Optional[Tensor]:
    """Edges to keep under ``max_num_neighbors`` (targets sorted), or ``None`` when none is dropped."""
    degree = torch.bincount(target, minlength=num_targets)
    if degree.numel() == 0 or int(degree.max()) <= cap:
        return None
    if on_overflow == "raise":
        node = int(torch.argmax(degree))
        raise NeighborOverflowError(int(degree[node]), node, cap)
    # Order by (target, distance, source): stable sorts keep the earlier keys.
    by_dist = torch.sort(sq_dist(), stable=True).indices
    order = by_dist.index_select(0, torch.sort(target.index_select(0, by_dist), stable=True).indices)
    start = torch.cumsum(degree, 0) - degree
    rank = torch.arange(order.numel(), device=order.device) - start.index_select(0, target.index_select(0, order))
    return torch.sort(order[rank < cap]).values
