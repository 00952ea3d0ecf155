"""The one distance formula every backend shares, periodic images, edge vectors.

Exactness across backends rests on this module: a pair (i, j) is an edge iff
:func:`accumulate_sq` over the axes gives ``d2 <= r * r`` in the dtype of
``pos``. Every backend (dense, hash, cluster, the Verlet list) evaluates that
same sequence of elementwise operations on the same values, so all of them
return the identical edge set, ties at exactly ``r`` included. Element-wise
tensor ops are IEEE-exact per element, so this holds on CPU and CUDA alike.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor

#: Unordered pairs ``(a, b)`` in chunks, as the backends produce them.
Pairs = List[Tuple[Tensor, Tensor]]

#: Relative slack of every candidate search over the exact radius. Candidate
#: generators (cells, torch-cluster, Verlet skins) may only over-approximate;
#: the exact test above then decides. 1e-4 is far above the float32 rounding
#: of a distance (about 1e-6 relative) and costs < 0.1% more candidates.
SLACK = 1e-4


def columns(pos: Tensor, order: Optional[Tensor] = None) -> List[Tensor]:
    """The columns of ``pos`` (rows in ``order`` when given), each contiguous: what the scan reads.

    Gathering each column by ``order`` is faster on a CPU than gathering rows
    of ``d`` values (a per-row cost).
    """
    cols = pos.t().contiguous()
    return list(cols.unbind(0) if order is None else (c.index_select(0, order) for c in cols))


def accumulate_sq(acc: Optional[Tensor], diff: Tensor, period: Optional[float],
                  scratch: Optional[Tensor] = None) -> Tensor:
    """Add one axis' squared (minimum-image) difference to ``acc``, in place.

    ``diff`` is a fresh, grad-free tensor the caller gives up. The order of the
    operations is fixed, and the minimum image ``diff - L * round(diff / L)`` is
    odd (``round`` is half-to-even), so ``d2(i, j) == d2(j, i)`` bit for bit.
    ``scratch``, a buffer shaped as ``diff``, holds ``L * round(diff / L)``
    instead of fresh tensors (the same operations, so the same values).
    """
    if period is not None:
        if scratch is None:
            diff = diff - period * torch.round(diff / period)
        else:
            diff.sub_(torch.div(diff, period, out=scratch).round_().mul_(period))
    sq = diff.mul_(diff)
    return sq if acc is None else acc.add_(sq)


def exact_r2(r: float, dtype: torch.dtype) -> float:
    """``r * r`` rounded once to ``dtype``: the threshold every backend compares to."""
    return torch.tensor(r * r, dtype=torch.float64).to(dtype).item()


def search_radius(r: float, dtype: torch.dtype, dim: int) -> float:
    """A radius whose ball holds every pair the exact test can accept: what candidate searches use.

    Normally ``r (1 + SLACK)``. But when ``r * r`` is near or below the smallest
    normal number of ``dtype``, squares of distances far above ``r`` round to
    ``0 <= r2``: coincident points are then neighbours however small ``r`` is,
    and so is every pair whose squared axis differences underflow. Each
    accepted pair has every rounded squared difference ``<= r2``, so every
    axis difference below ``sqrt(2 tiny)`` and the distance below
    ``sqrt(2 d tiny)``; the radius is floored there.
    """
    tiny = torch.finfo(dtype).tiny
    return max(r, math.sqrt(2.0 * dim * tiny)) * (1.0 + SLACK)


def pair_sq_dist(pos: Tensor, i: Tensor, j: Tensor, box: Optional[Tensor], source: Optional[Tensor] = None) -> Tensor:
    """Squared distance of rows ``pos[i]`` and ``source[j]`` (``source`` defaults to ``pos``) by the shared formula."""
    source = pos if source is None else source
    per = periods(box, pos.size(1))
    acc: Optional[Tensor] = None
    for k in range(pos.size(1)):
        acc = accumulate_sq(acc, pos[:, k].index_select(0, i) - source[:, k].index_select(0, j), per[k])
    assert acc is not None  # d >= 1 after validation
    return acc


def periods(box: Optional[Tensor], dim: int) -> list:
    """Per-axis period as Python floats (``None`` for open axes)."""
    if box is None:
        return [None] * dim
    return [None if not torch.isfinite(b) else float(b) for b in box.cpu()]


def periodic_box(box: Optional[Tensor], periodic: Optional[Tensor]) -> Optional[Tensor]:
    """Merge ``box`` and ``periodic`` into one ``(d,)`` tensor: ``inf`` on open axes."""
    if box is None:
        return None
    if periodic is None:
        return box
    return torch.where(periodic, box, torch.full_like(box, float("inf")))


def wrap(pos: Tensor, box: Optional[Tensor]) -> Tensor:
    """Wrap positions into ``[0, L)`` on periodic axes (gradient passes as identity)."""
    if box is None:
        return pos
    finite = torch.isfinite(box)
    if not bool(finite.any()):
        return pos
    safe = torch.where(finite, box, torch.ones_like(box)).to(pos.dtype)
    return torch.where(finite, torch.remainder(pos, safe), pos)


def periodic_images(pos: Tensor, box: Tensor, reach: float) -> Tuple[Tensor, Tensor]:
    """Append shifted copies of the particles within ``reach`` of a periodic face.

    Returns float64 positions ``(M, d)`` (originals first) for candidate search and
    ``src (M,)``, the original index of each row. Corners get every combination
    of shifts because each axis also copies the images added before it. The
    caller tests candidates with the minimum-image formula on the original rows,
    so an image only needs to bring a pair within ``reach``; a pair found through
    two images is removed as a duplicate later.
    """
    x = pos.detach().to(torch.float64)
    src = torch.arange(pos.size(0), device=pos.device)
    for k, side in enumerate(box.tolist()):
        if side == float("inf"):
            continue
        col = x[:, k]
        parts_x, parts_src = [x], [src]
        for mask, shift in ((col < reach, side), (col >= side - reach, -side)):
            idx = mask.nonzero().view(-1)
            moved = x.index_select(0, idx)
            moved[:, k] += shift
            parts_x.append(moved)
            parts_src.append(src.index_select(0, idx))
        x, src = torch.cat(parts_x), torch.cat(parts_src)
    return x, src


def image_pairs(pairs: Pairs, labels: Tensor, n: int) -> Pairs:
    """Pairs of rows of :func:`periodic_images` as pairs of particles, each pair once (nearly).

    Two particles (rows below ``n``) are kept. Two images are dropped: their
    particles pair directly or through one image, which is also found,
    because every image within reach of the box exists. A particle ``i`` and
    an image of ``j`` are kept when ``i < j``: the mirror pair (``j`` and an
    image of ``i``) is then dropped, and so is a particle with its own image.
    Only a pair at a tie (exactly half a period, where two images are
    equally near) can still come twice; the caller removes repeats.
    """
    out: Pairs = []
    for a, b in pairs:
        la, lb = labels.index_select(0, a), labels.index_select(0, b)
        mine_a, mine_b = a < n, b < n
        keep = (mine_a & mine_b) | ((mine_a ^ mine_b) & (la != lb) & ((la < lb) == mine_a))
        at = keep.nonzero().view(-1)
        out.append((la.index_select(0, at), lb.index_select(0, at)))
    return out


def edge_vectors(
    pos: Tensor,
    edge_index: Tensor,
    box: Optional[Tensor] = None,
    periodic: Optional[Tensor] = None,
    flow: str = "source_to_target",
    *,
    shifts: Optional[Tensor] = None,
    cell: Optional[Tensor] = None,
    batch: Optional[Tensor] = None,
    validate: bool = True,
) -> Tuple[Tensor, Tensor]:
    r"""Differentiable edge vectors and lengths: minimum image in a ``box``, or the given images of a ``cell``.

    .. math::
        \mathbf{e}_{ij} = \mathbf{x}_i - \mathbf{x}_j - \mathbf{L} \odot
        \operatorname{round}\!\left((\mathbf{x}_i - \mathbf{x}_j) / \mathbf{L}\right)
        \quad\text{or}\quad
        \mathbf{e}_{ij} = \mathbf{x}_i - (\mathbf{x}_j + S_{ij}\,\mathrm{cell}),
        \qquad d_{ij} = \lVert \mathbf{e}_{ij} \rVert

    for every edge ``j -> i`` (``i`` the target): the vector from the source
    (image) to the target, i.e. minus ASE's ``D``. With ``shifts`` and ``cell``
    (from ``radius_graph(..., cell=..., return_shifts=True)``) the lengths are
    bit for bit the ones the graph was built with, and gradients reach both
    ``pos`` and ``cell``: stress by the strain trick (scale ``pos`` and
    ``cell`` by ``I + epsilon`` and differentiate by ``epsilon``) works. In a
    ``box`` the rounding is a constant shift, so gradients reach ``pos`` as
    if the box were open. A zero vector (coincident points) has length 0 and
    a zero gradient, never NaN.

    Args:
        pos (Tensor): positions ``(N, d)``.
        edge_index (Tensor): ``(2, E)`` from :func:`radius_graph`.
        box (Tensor, optional): ``(d,)`` side lengths. (default: ``None``)
        periodic (Tensor, optional): ``(d,)`` bool mask. (default: all axes of ``box``)
        flow (str): ``"source_to_target"`` (row 1 is the target) or
            ``"target_to_source"`` (row 0 is). (default: ``"source_to_target"``)
        shifts (Tensor, optional): ``(E, d)`` integer image of each source. (default: ``None``)
        cell (Tensor, optional): ``(d, d)`` or ``(B, d, d)`` lattice vectors as rows,
            with ``shifts``. (default: ``None``)
        batch (Tensor, optional): ``(N,)`` example ids, to pick each edge's cell
            from a ``(B, d, d)`` stack. (default: ``None``)
        validate (bool): check that ``edge_index`` ids lie in ``[0, N)`` (one
            host sync); the layers skip it for graphs the engine built or that
            were checked on the way in. (default: ``True``)

    Shapes:
        pos ``(N, d)``, edge_index ``(2, E)``, shifts ``(E, d)`` -> vectors ``(E, d)``, lengths ``(E,)``.
    """
    from .cells import check_shifts, shift_vectors, sq_norm
    from .checks import FLOWS, check_box, check_choice, check_edge_index, check_pos

    check_pos(pos, finite=False)
    edge_index = check_edge_index(edge_index, pos.size(0), values=validate)
    target, source = edge_index.flip(0) if check_choice(flow, "flow", FLOWS) == "source_to_target" else edge_index
    if shifts is not None or cell is not None:
        if box is not None:
            raise ValueError("Got both 'box' and 'cell'/'shifts': edges of a cell carry their shifts, give those")
        shifts, cell, which = check_shifts(shifts, cell, batch, pos, source)
        # The graph's exact test, in the same order: the image x_j + S cell first, then the difference.
        vec = pos.index_select(0, target) - (pos.index_select(0, source) + shift_vectors(shifts, cell, which))
    else:
        box = check_box(box, periodic, pos)
        vec = pos.index_select(0, target) - pos.index_select(0, source)
        if box is not None:
            finite = torch.isfinite(box)
            safe = torch.where(finite, box, torch.ones_like(box)).to(pos.dtype)
            vec = vec - torch.where(finite, safe * torch.round(vec.detach() / safe), 0.0)
    sq = sq_norm(vec)
    # sqrt has an infinite derivative at 0: route zero lengths around it.
    nonzero = sq > 0
    length = torch.where(nonzero, torch.sqrt(torch.where(nonzero, sq, 1.0)), 0.0)
    return vec, length
