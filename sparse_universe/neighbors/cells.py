"""Periodic cells: which image of a particle is a neighbour, decided in one place.

Conventions (ASE's, so materials pipelines can hand their data over as is):

* ``cell`` rows are the lattice vectors :math:`\\mathbf{a}_k`; ``pbc[k]`` says
  whether axis ``k`` is periodic. A structure is a ``(d, d)`` cell, a batch of
  them ``(B, d, d)`` indexed by the batch id.
* An edge ``j -> i`` (source ``j``, target ``i``) carries an integer shift
  :math:`S \\in \\mathbb{Z}^d` (zero on open axes): the neighbour is the image
  of ``j`` at ``pos[j] + S @ cell``, and
  :math:`D_{ij} = \\mathrm{pos}_j - \\mathrm{pos}_i + S\\,\\mathrm{cell}` is the
  vector from ``i`` to it (ASE's ``D`` of the pair ``(i, j, S)``). Shifts are
  relative to the coordinates given, which may lie outside the cell.
* The exact test: ``(i, j, S)`` is an edge iff :func:`shift_sq_dist`, the
  squared norm of :math:`D = (\\mathrm{pos}_j + S\\,\\mathrm{cell}) - \\mathrm{pos}_i`
  computed in the dtype of ``pos`` by a fixed sequence of elementwise
  operations (the image first, then the difference), is ``<= r * r``
  rounded to that dtype.
  Every backend's candidates go through it, and
  :func:`~sparse_universe.edge_vectors` evaluates the same expression, so
  lengths and graph agree bit for bit.

How images are found
--------------------
Positions are wrapped into the cell in float64 (fractional coordinates from
the pseudo-inverse of the periodic rows, floored on periodic axes). An image
of a source can only be within ``r`` of a target inside the cell if its
fractional coordinate along every periodic axis lies in
``[-r / h_k, 1 + r / h_k]``, ``h_k`` the distance between lattice planes of
axis ``k``; so at most ``ceil(r / h_k)`` shifts either way are tried, axis by
axis (corners come from shifting earlier images again). A bipartite search
(targets: the wrapped particles, sources: all images) then returns
candidates within a slightly larger radius, and the exact test decides. A
cut-off longer than the cell is no special case: it only means more images,
and a particle may neighbour its own images.
"""

from __future__ import annotations

import itertools
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .checks import check_batch, to_tensor
from .geometry import exact_r2, search_radius
from .sorting import Part, edge_keys, empty, flat_nonzero, kept_places, part_size, sort_keys

#: Bits an edge's sort key may use: ``target << b | particle << c | code`` when that fits, else the
#: slower key through a rank table (see :func:`periodic_edges`).
KEY_BITS = 63


class Cells(NamedTuple):
    """Validated cells: ``cell (C, d, d)`` float64, ``pbc (C, d)`` bool, and ``which (N,)``, the cell of every
    particle (``C`` is 1 when one cell serves the whole batch)."""

    cell: Tensor
    pbc: Tensor
    which: Tensor


def check_cells(cell: object, pbc: object, pos: Tensor, batch: Optional[Tensor]) -> Optional[Cells]:
    """Validate ``cell`` and ``pbc`` against ``pos`` and ``batch``; ``None`` when no axis is periodic.

    A ``cell`` without ``pbc`` is periodic on every axis. ``pbc`` without
    ``cell`` must be all ``False``. Rows of periodic axes must be finite and
    linearly independent; rows of open axes may be anything finite (zero too).
    """
    d, name = pos.size(1), "cell"
    if cell is None:
        if pbc is not None and bool(to_tensor(pbc, "pbc", torch.bool, pos.device).any()):
            raise ValueError(f"Got periodic axes in 'pbc' without a '{name}': give the lattice vectors as '{name}'")
        return None
    cell_t = to_tensor(cell, name, torch.float64, pos.device).detach()  # the search needs no gradients
    if cell_t.dim() not in (2, 3) or cell_t.shape[-2:] != (d, d):
        raise ValueError(f"Expected '{name}' of shape ({d}, {d}) or (B, {d}, {d}), rows the lattice vectors "
                         f"(got {tuple(cell_t.shape)})")
    cell_t = cell_t.reshape(-1, d, d)
    pbc_t = torch.ones(1, d, dtype=torch.bool, device=pos.device) if pbc is None else to_tensor(
        pbc, "pbc", None, pos.device)
    if pbc_t.dtype != torch.bool:
        raise TypeError(f"Expected 'pbc' to be a bool mask (got dtype {pbc_t.dtype})")
    if pbc_t.dim() not in (1, 2) or pbc_t.size(-1) != d:
        raise ValueError(f"Expected 'pbc' of shape ({d},) or (B, {d}) (got {tuple(pbc_t.shape)})")
    pbc_t = pbc_t.reshape(-1, d)
    count = max(cell_t.size(0), pbc_t.size(0))
    if min(cell_t.size(0), pbc_t.size(0)) not in (1, count):
        raise ValueError(f"Expected '{name}' and 'pbc' for the same number of structures (got "
                         f"{cell_t.size(0)} and {pbc_t.size(0)})")
    cell_t, pbc_t = cell_t.expand(count, d, d), pbc_t.expand(count, d)
    _check_lattice(cell_t, pbc_t, name)
    which = torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
    if count > 1:
        if batch is None:
            raise ValueError(f"Got {count} cells but no 'batch': give each particle's structure as 'batch'")
        if batch.numel() and int(batch.max()) >= count:
            raise ValueError(f"Expected 'batch' ids < {count}, one cell each (got {int(batch.max())})")
        which = batch
    if not bool(pbc_t.any()):
        return None
    return Cells(cell_t, pbc_t, which)


def _check_lattice(cell: Tensor, pbc: Tensor, name: str) -> None:
    bad = ~torch.isfinite(cell).flatten(1).all(1)
    if bool(bad.any()):
        raise ValueError(f"Expected '{name}' to be finite (got NaN or inf in structure {int(bad.nonzero()[0])})")
    periodic_rows = cell * pbc[:, :, None]
    sv = torch.linalg.svdvals(periodic_rows)  # (C, d), descending
    rank = (sv > 1e-9 * sv[:, :1].clamp_min(1e-300)).sum(1)
    short = (rank < pbc.sum(1)).nonzero().view(-1)
    if short.numel():
        b = int(short[0])
        raise ValueError(f"Expected the lattice vectors of the periodic axes of '{name}' to be linearly independent "
                         f"(structure {b}: rows {pbc[b].nonzero().view(-1).tolist()} of {cell[b].tolist()} span "
                         f"only {int(rank[b])} dimensions)")


def check_shifts(shifts: object, cell: object, batch: Optional[Tensor], pos: Tensor,
                 source: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """``shifts`` ``(E, d)`` int64, ``cell`` ``(C, d, d)`` in the dtype of ``pos`` (gradients kept), and the
    cell of every edge's source."""
    d, e = pos.size(1), source.numel()
    if shifts is None or cell is None:
        raise ValueError("Expected both 'shifts' and 'cell' (got only one): radius_graph(..., cell=cell, "
                         "return_shifts=True) gives the shifts")
    if not isinstance(shifts, Tensor) or shifts.shape != (e, d) or shifts.dtype.is_floating_point:
        got = f"{shifts.dtype} of shape {tuple(shifts.shape)}" if isinstance(shifts, Tensor) else type(shifts).__name__
        raise ValueError(f"Expected integer 'shifts' of shape ({e}, {d}), one per edge (got {got})")
    cell_t = cell if isinstance(cell, Tensor) else to_tensor(cell, "cell", pos.dtype, pos.device)
    if cell_t.dim() not in (2, 3) or cell_t.shape[-2:] != (d, d):
        raise ValueError(f"Expected 'cell' of shape ({d}, {d}) or (B, {d}, {d}) (got {tuple(cell_t.shape)})")
    cell_t = cell_t.reshape(-1, d, d).to(pos.dtype)
    which = torch.zeros(e, dtype=torch.long, device=pos.device)
    if cell_t.size(0) > 1:
        batch = check_batch(batch, pos)
        if batch is None:
            raise ValueError(f"Got {cell_t.size(0)} cells but no 'batch': give each particle's structure")
        which = batch.index_select(0, source)
    return shifts.long(), cell_t, which


def shift_vectors(shifts: Tensor, cell: Tensor, which: Tensor) -> Tensor:
    """``S @ cell`` of every edge as a fixed sum of elementwise products (bitwise reproducible).

    Shapes:
        shifts ``(E, d)`` int64, cell ``(C, d, d)``, which ``(E,)`` -> ``(E, d)`` in the dtype of ``cell``.
    """
    out: Optional[Tensor] = None
    for k in range(cell.size(1)):
        row = cell[0, k] if cell.size(0) == 1 else cell[:, k].index_select(0, which)  # (d,) or (E, d)
        term = shifts[:, k : k + 1].to(cell.dtype) * row
        out = term if out is None else out + term
    assert out is not None
    return out


def sq_norm(vec: Tensor) -> Tensor:
    """``sum_k vec_k^2`` in a fixed order (the exact test's and :func:`edge_vectors`' lengths agree bitwise)."""
    acc = vec[:, 0] * vec[:, 0]
    for k in range(1, vec.size(1)):
        acc = acc + vec[:, k] * vec[:, k]
    return acc


def shift_sq_dist(target_pos: Tensor, source_pos: Tensor, i: Tensor, j: Tensor, shift: Tensor) -> Tensor:
    """The exact test's ``|(pos[j] + S @ cell) - pos[i]|^2`` (``shift`` is ``S @ cell``, in the dtype of ``pos``)."""
    return sq_norm((source_pos.index_select(0, j) + shift) - target_pos.index_select(0, i))


def wrap_into_cells(pos: Tensor, cells: Cells) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """float64 positions wrapped into their cell, their fractional coordinates, the integer shift removed,
    and the plane spacing ``h (C, d)`` (``inf`` on open axes)."""
    periodic_rows = cells.cell * cells.pbc[:, :, None]
    inverse = torch.linalg.pinv(periodic_rows)  # (C, d, d): fractional coordinates on periodic axes
    x = pos.detach().to(torch.float64)
    frac = _times(x, inverse, cells.which)
    periodic = cells.pbc if cells.pbc.size(0) == 1 else cells.pbc.index_select(0, cells.which)
    moved = torch.where(periodic, torch.floor(frac), 0.0)
    spacing = 1.0 / torch.linalg.vector_norm(inverse, dim=1)  # (C, d); 1/0 = inf on open axes
    if not bool(moved.any()):  # all inside their cell
        return x, frac, moved.long(), spacing
    return x - _times(moved, cells.cell, cells.which), frac - moved, moved.long(), spacing


def _times(x: Tensor, mats: Tensor, which: Tensor) -> Tensor:
    """Row ``n`` of ``x`` times matrix ``mats[which[n]]``."""
    if mats.size(0) == 1:
        return x @ mats[0]
    return torch.einsum("nd,nde->ne", x, mats.index_select(0, which))


def images(frac: Tensor, cells: Cells, reach: Tensor) -> Tuple[Tensor, Tensor]:
    """Every image that may lie within the search radius of a point inside the cell.

    ``frac`` are the wrapped fractional coordinates ``(N, d)``, ``reach`` the
    search radius over the plane spacing ``(C, d)``. Returns the particle of
    each image ``(M,)`` and its shift ``(M, d)`` (the particles themselves,
    ``S = 0``, are not among them).
    """
    count = torch.ceil(reach).long()  # (C, d): shifts either way worth trying
    label = torch.arange(frac.size(0), device=frac.device)
    shift = torch.zeros_like(frac, dtype=torch.long)
    for k in range(frac.size(1)):
        most = int(count[:, k].max()) if count.numel() else 0
        if most == 0:
            continue
        steps = torch.cat([torch.arange(-most, 0), torch.arange(1, most + 1)]).to(frac.device)  # (K,)
        f = frac[:, k].index_select(0, label)
        lim = reach[:, k] if reach.size(0) == 1 else reach[:, k].index_select(0, cells.which.index_select(0, label))
        near = flat_nonzero((f <= lim) | (f >= 1 - lim))  # rows that some step keeps within reach
        cell_of = cells.which.index_select(0, label.index_select(0, near))
        lim = reach[:, k].index_select(0, cell_of)[:, None]
        moved = f.index_select(0, near)[:, None] + steps  # (R, K) fractional coordinate after the shift
        ok = (steps.abs() <= count[:, k].index_select(0, cell_of)[:, None]) & (moved >= -lim) & (moved <= 1 + lim)
        at, step = ok.nonzero().unbind(1)
        row = near.index_select(0, at)
        new_shift = shift.index_select(0, row)
        new_shift[:, k] += steps.index_select(0, step)
        shift = torch.cat([shift, new_shift])
        label = torch.cat([label, label.index_select(0, row)])
    return label[frac.size(0):], shift[frac.size(0):]


def periodic_edges(query: Tensor, source: Tensor, r: float, query_cells: Cells, source_cells: Cells,
                   query_group: Tensor, source_group: Tensor, search, drop_self: bool = False,
                   loop: bool = False, half_search=None) -> Tuple[Tensor, Tensor]:
    """Every exact ``(i, j, S)``, ``query`` targets and ``source`` images, sorted by target, source, shift.

    Returns ``[source, target]`` rows ``(2, E)`` and the shifts ``(E, d)``.
    ``search(query, source, r, query_group, source_group)`` is a bipartite
    backend (hash, cluster or dense). When every particle lies inside its
    cell, the images are built by the exact test's own formula
    (``pos[j] + S @ cell`` in the dtype of ``pos``), so the backend's test *is*
    the exact test. Otherwise the search runs on positions wrapped in float64,
    at a radius that covers rounding, and the exact test decides each
    candidate, chunk by chunk. ``drop_self`` drops ``(i, i, 0)``; ``loop`` adds it.

    ``half_search(pos, r, group)``, for a query set that is the source set,
    finds each unordered pair of rows once. The rows are then the particles
    and their images on the positive side only (``S`` lexicographically
    positive): a pair of particles gives both edges; a particle ``i`` and the
    image of ``j`` at ``S`` give ``(i, j, S)`` and its mirror ``(j, i, -S)``;
    two images give none (the same pair, moved, is a particle and an image).
    It is used when those rows are at most twice the particles, so that the
    pairs between two images cost less than the bipartite search's second
    visit of every pair.

    Each edge is the key ``target << b | particle << c | code``, ``code`` the
    shift's place in lexicographic order (``code(-S)`` is the mirror of
    ``code(S)``), so the sorted keys are the edges in order (for a fixed
    target and source the given-coordinate shift differs from the row's by a
    constant), and a mask and a shift decode them. Where that needs more than
    63 bits, the low part is instead the row's place among the rows ordered
    by (particle, shift), decoded through tables (:data:`KEY_BITS`), and the
    half search is not used.
    """
    dim, nq = query.size(1), query.size(0)
    wrapped_s, frac_s, moved_s, spacing = wrap_into_cells(source, source_cells)
    same = query is source and query_cells is source_cells  # a graph, not a bipartite search
    wrapped_q, _, moved_q, _ = (wrapped_s, frac_s, moved_s, spacing) if same else wrap_into_cells(query, query_cells)
    unwrapped = bool(moved_q.any()) or bool(moved_s.any())
    reach_r = search_radius(r, query.dtype, dim)
    if unwrapped:
        # pos[j] + S @ cell - pos[i] cancels for coordinates far outside the cell, and its rounding grows
        # with their size: the search radius covers that too.
        size = max((float(t.detach().abs().max()) for t in (query, source) if t.numel()), default=0.0)
        reach_r += 8 * dim * torch.finfo(query.dtype).eps * (size + r)
    n = source.size(0)  # rows 0 .. n - 1 are the particles themselves (S = 0), then their images
    image_label, image_shift = images(frac_s, source_cells,
                                      torch.where(source_cells.pbc, reach_r * (1 + 1e-6) / spacing, 0.0))
    image_code, table = _shift_codes(image_shift)
    code_bits, label_bits = (max(1, (m - 1).bit_length()) for m in (table.size(0), n))
    packed = max(1, (nq - 1).bit_length()) + label_bits + code_bits <= KEY_BITS
    half = False
    if half_search is not None and packed and not unwrapped:
        positive = flat_nonzero(lex_sign(image_shift) > 0)  # the images on the positive side
        half = n + positive.numel() <= 2 * nq
        if half:
            image_label, image_shift, image_code = (t.index_select(0, positive)
                                                    for t in (image_label, image_shift, image_code))
    label = torch.cat([torch.arange(n, device=query.device), image_label])
    code = torch.cat([image_code.new_full((n,), (table.size(0) - 1) // 2), image_code])  # code(0): the middle
    which = source_cells.which.index_select(0, label)
    cell = source_cells.cell.to(query.dtype)
    image_group = source_group.index_select(0, label)

    def rows_at(pos: Tensor, lattice: Tensor) -> Tensor:  # pos[j] + S @ cell of every row
        image = pos.index_select(0, image_label) + shift_vectors(image_shift, lattice, which[n:])
        return torch.cat([pos, image])

    if unwrapped:  # candidates from the wrapped frame; S = S' - moved[j] + moved[i] differs per edge
        x = rows_at(wrapped_s, source_cells.cell)
        pairs = search(wrapped_q, x, reach_r, query_group, image_group)
        base = torch.cat([image_shift.new_zeros(n, dim), image_shift]) - moved_s.index_select(0, label)
    else:  # S = S': the images are the exact test's own, and so is the search's test
        x = rows_at(source, cell)  # pos[j] + S @ cell (S = 0: pos[j] itself)
        pairs = half_search(x, r, image_group) if half else search(query, x, r, query_group, image_group)
    rows = label.numel()
    if packed:  # row_key = particle << code_bits | code
        bits, row_key = label_bits + code_bits, (label << code_bits).bitwise_or_(code)
    else:  # row_key = the row's place in (particle, shift) order
        small = torch.int32 if rows < 2**31 else torch.long  # edge-sized gathers read small tables in cache
        bits, by_particle = max(1, (rows - 1).bit_length()), torch.sort(label * table.size(0) + code).indices
        row_key = torch.empty_like(label)
        row_key[by_particle] = torch.arange(rows, device=label.device)
    r2 = exact_r2(r, query.dtype)
    parts: List[Part] = []
    while pairs:
        qi, row = pairs.pop(0)
        if half:  # rows p < q: p a particle, q a particle or an image; two images make no edge
            p, q = torch.minimum(qi, row), torch.maximum(qi, row)
            parts.append((p, q, kept_places(p < nq)))
            continue
        keep = row != qi if drop_self else None  # (i, i, 0) is row i of the images, the particle itself
        if unwrapped:
            j = label.index_select(0, row)
            s = base.index_select(0, row).add_(moved_q.index_select(0, qi))
            hit = shift_sq_dist(query, source, qi, j, shift_vectors(s, cell, which.index_select(0, row))) <= r2
            keep = hit if keep is None else keep & hit
        parts.append((qi, row, None if keep is None else kept_places(keep)))
    forms = [(bits, row_key)]  # p -> the row q: p << bits | row_key[q]
    if half:  # and its mirror, q's particle -> p at -S: particle(q) << bits | p << code_bits | code(-S)
        forms.append((code_bits, (label << bits).bitwise_or_(table.size(0) - 1 - code)))
    total, chunks = part_size(parts) * len(forms), edge_keys(parts, *forms)
    if loop:
        ids = torch.arange(nq, device=query.device)
        total, chunks = total + nq, itertools.chain(chunks, edge_keys([(ids, ids, None)], forms[0]))
    out = sort_keys(chunks, total, query.device)
    shifts = empty((out.size(1), dim), torch.long, query.device)
    if packed:
        torch.index_select(table, 0, torch.bitwise_and(out[1], (1 << code_bits) - 1, out=out[0]), out=shifts)
        torch.bitwise_right_shift(out[1], code_bits, out=out[0]).bitwise_and_((1 << label_bits) - 1)
    else:
        place = torch.bitwise_and(out[1], (1 << bits) - 1, out=out[0])  # the row's place in (particle, shift) order
        torch.index_select(table, 0, code.index_select(0, by_particle).to(small).index_select(0, place), out=shifts)
        place.copy_(label.index_select(0, by_particle).to(small).index_select(0, place))  # out = [source, target]
    target = out[1].bitwise_right_shift_(bits)
    if unwrapped:
        shifts += moved_q.index_select(0, target) - moved_s.index_select(0, out[0])
    return out, shifts


def _shift_codes(shift: Tensor) -> Tuple[Tensor, Tensor]:
    """Each row's shift as a small code that orders shifts lexicographically, and the table of shifts by
    code (``table[code[m]] == shift[m]``). The table spans ``-m_k .. m_k`` on axis ``k``, ``m_k`` the
    largest ``|S_k|``, so that ``code(-S) == len(table) - 1 - code(S)``."""
    dim = shift.size(1)
    most = shift.abs().max(0).values if shift.numel() else shift.new_zeros(dim)
    span = (2 * most + 1).tolist()
    code = torch.zeros(shift.size(0), dtype=torch.long, device=shift.device)
    for k, n in enumerate(span):
        code = code * n + (shift[:, k] + most[k])  # |S'| <= ceil(r / h) per axis: small
    digits = torch.meshgrid(*[torch.arange(n, device=shift.device) for n in span], indexing="ij")
    table = torch.stack([g.reshape(-1) for g in digits], 1) - most  # (prod(span), d), in code order
    return code, table


def lex_sign(shifts: Tensor) -> Tensor:
    """The sign of the first non-zero component of each shift (0 for ``S = 0``): lexicographic order."""
    sign = torch.zeros(shifts.size(0), dtype=shifts.dtype, device=shifts.device)
    for k in reversed(range(shifts.size(1))):
        sign = torch.where(shifts[:, k] != 0, shifts[:, k].sign(), sign)
    return sign
