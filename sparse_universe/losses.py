"""Supervision of trajectories: the seed's centroid-path objective."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Optional, Sequence, Union

import torch
from torch import Tensor
from torch_geometric.utils import softmax

from .neighbors.checks import check_choice, check_real

if TYPE_CHECKING:
    from .branching import WaveState

READINGS = ("density", "particle")
REDUCTIONS = ("mean", "sum", "none")


def select_members(members: Union[Tensor, int], num_particles: int, token: Optional[Tensor] = None) -> Tensor:
    """Member indices from indices, a bool mask, or a token id (with ``token``)."""
    if isinstance(members, int) and not isinstance(members, bool):
        if token is None:
            raise ValueError("Got a token id as 'members' without 'token': pass the state's token vector")
        members = token == members
    if not isinstance(members, Tensor):
        raise TypeError(f"Expected 'members' as indices, a bool mask or a token id (got {type(members).__name__})")
    if members.dtype == torch.bool:
        if members.shape != (num_particles,):
            raise ValueError(f"Expected a 'members' mask of shape ({num_particles},) (got {tuple(members.shape)})")
        members = members.nonzero().view(-1)
    if members.numel() == 0:
        raise ValueError("Expected at least one member particle (got none)")
    if members.dtype.is_floating_point or int(members.min()) < 0 or int(members.max()) >= num_particles:
        raise ValueError(f"Expected member indices in [0, {num_particles}) (got {members.dtype}, "
                         f"range [{members.min().item()}, {members.max().item()}])")
    return members.long()


def path_loss(positions: Tensor, path: Tensor, members: Union[Tensor, int], sigma: float = 1.0, *,
              token: Optional[Tensor] = None, reading: str = "density", reduction: str = "mean") -> Tensor:
    r"""Negative log-likelihood of a centroid path under the members' Gaussians.

    The seed maximises :math:`\mathcal{N}(x_t^{(i)}, \sigma^2)(\ell_t)` over the
    members :math:`L`. Two readings, both as losses to minimise:

    * ``"density"``: the path lies in the members' density region,
      :math:`-\log \frac{1}{|L|}\sum_{i\in L} \mathcal{N}(\ell_t; x_t^{(i)}, \sigma^2 I)`
      (log-sum-exp, stable however far the path is). Satisfied when *some*
      members follow the path.
    * ``"particle"``: every member follows it,
      :math:`-\frac{1}{|L|}\sum_{i\in L} \log \mathcal{N}(\ell_t; x_t^{(i)}, \sigma^2 I)`.

    Non-finite positions (a diverged rollout) give a NaN loss, as torch's
    losses do, so a training loop's own NaN check (or the
    :class:`~sparse_universe.monitors.LossSpike` monitor) sees it; the first
    time this happens in a process a ``RuntimeWarning`` names the first
    non-finite step, which points at the cause (lower ``dt``, or mind the
    collision horizon).

    ``positions`` are a rollout's ``(T + 1, N, d)``: row 0 is the given start,
    so the path :math:`\ell_0 \ldots \ell_{T-1}` is compared with rows
    ``1 .. T`` (where the particles are after each step). A ``(T, N, d)``
    tensor is compared row by row.

    Args:
        positions (Tensor): ``(T + 1, N, d)`` or ``(T, N, d)`` (or a distributed rollout's
            :class:`~sparse_universe.distributed.OwnedRows`).
        path (Tensor): ``(T, d)`` centroid path.
        members: indices ``(|L|,)``, a bool mask ``(N,)``, or a token id (then pass ``token``).
        sigma (float): std of the Gaussians. (default: ``1.0``)
        token (Tensor, optional): ``(N,)`` token ids, for ``members`` given as an id.
        reading (str): ``"density"`` or ``"particle"``. (default: ``"density"``)
        reduction (str): over time, ``"mean"``, ``"sum"`` or ``"none"`` (shape ``(T,)``).
            (default: ``"mean"``)
    """
    if type(positions).__name__ == "OwnedRows":  # a distributed rollout's positions
        return positions.path_loss(path, members, sigma, token=token, reading=reading, reduction=reduction)
    _check(reading, reduction, sigma)
    if positions.dim() != 3 or path.dim() != 2 or path.size(1) != positions.size(2):
        raise ValueError(f"Expected positions (T[+1], N, d) and path (T, d) (got {tuple(positions.shape)} and "
                         f"{tuple(path.shape)})")
    steps = path.size(0)
    if positions.size(0) == steps + 1:
        positions = positions[1:]
    elif positions.size(0) != steps:
        raise ValueError(
            f"Expected {steps} or {steps + 1} rows of positions for a path of {steps} (got {positions.size(0)})"
        )
    idx = select_members(members, positions.size(1), token)
    x = positions.index_select(1, idx)  # (T, |L|, d)
    log_n = _log_normal(x, path[:, None, :], sigma)  # (T, |L|)
    if reading == "density":
        per_step = -(torch.logsumexp(log_n, dim=1) - math.log(idx.numel()))  # (T,)
    else:
        per_step = -log_n.mean(dim=1)
    _warn_not_finite(per_step, x, path)
    return _reduce(per_step, reduction)


def wave_path_loss(waves: Sequence[WaveState], path: Tensor, members: Union[Tensor, int], sigma: float = 1.0, *,
                   token: Optional[Tensor] = None, reading: str = "density", reduction: str = "mean") -> Tensor:
    r""":func:`path_loss` on the copies instead of the measured positions.

    A measured position is one copy drawn from :math:`p_{ij} = \mathrm{softmax}_j k^{(i,j)}`;
    this loss is the exact expectation over that draw instead of one sample,
    so it has no sampling noise and its gradient reaches every copy's position
    and score (not through a straight-through estimate):

    * ``"particle"``: :math:`\frac{1}{|L|}\sum_{i \in L} \sum_j p_{ij}\,
      (-\log \mathcal{N}(\ell_t; x_t^{(i,j)}, \sigma^2 I))`, the expected
      particle reading of the measurement;
    * ``"density"``: :math:`-\log \frac{1}{|L|}\sum_{i \in L}\sum_j p_{ij}\,
      \mathcal{N}(\ell_t; x_t^{(i,j)}, \sigma^2 I)`, the members' density
      as a mixture over their copies.

    With one copy per particle both equal :func:`path_loss` of the measured positions.

    Args:
        waves: the copies after each step, ``Trajectory.waves`` of a wave :func:`rollout` (``T`` of them).
        path (Tensor): ``(T, d)`` centroid path.
        members: particle indices, a bool mask ``(N,)``, or a token id (then pass ``token``, ``(N,)``).
        sigma, reading, reduction: as in :func:`path_loss`.
    """
    _check(reading, reduction, sigma)
    if path.dim() != 2 or len(waves) != path.size(0):
        raise ValueError(f"Expected one wave per row of a (T, d) path (got {len(waves)} waves and path of shape "
                         f"{tuple(path.shape)})")
    terms, count = wave_terms(waves, path, members, sigma, token, reading)
    combine = getattr(waves, "combine", None)  # a distributed rollout's waves sum their ranks' terms
    if combine is not None:
        terms = combine(terms, reading)
    per_step = -(terms - math.log(count)) if reading == "density" else -terms / count
    return _reduce(per_step, reduction)


def wave_terms(waves: Sequence[WaveState], path: Tensor, members: Union[Tensor, int], sigma: float,
               token: Optional[Tensor], reading: str) -> tuple:
    r"""Per step, the members' :math:`\log\sum_{i,j} p_{ij}\mathcal{N}` (density) or
    :math:`\sum_{i,j} p_{ij}\log\mathcal{N}` (particle) over the given copies ``(T,)``, and ``|L|``."""
    per_step, count = [], 0
    for wave, target in zip(waves, path):
        n = wave.num_particles
        is_member = torch.zeros(n, dtype=torch.bool, device=path.device)
        is_member[select_members(members, n, token)] = True
        mine = is_member.index_select(0, wave.particle).nonzero().view(-1)  # member copies
        group = wave.particle.index_select(0, mine)
        log_p = torch.log(softmax(wave.copies.score.index_select(0, mine), group, num_nodes=n))
        log_n = _log_normal(wave.copies.pos.index_select(0, mine), target, sigma)
        count = int(is_member.sum())
        if reading == "density":
            per_step.append(torch.logsumexp(log_p + log_n, 0))
        else:
            per_step.append((log_p.exp() * log_n).sum())
    return torch.stack(per_step), count


_warned_not_finite = False


def _warn_not_finite(per_step: Tensor, positions: Tensor, path: Tensor) -> None:
    """Warn once per process when the loss is not finite, naming the first bad step (one host sync)."""
    global _warned_not_finite
    if _warned_not_finite or bool(torch.isfinite(per_step.detach()).all()):
        return
    bad_pos = (~torch.isfinite(positions.detach())).flatten(1).any(1).nonzero().view(-1)
    bad_path = (~torch.isfinite(path.detach())).any(1).nonzero().view(-1)
    where = (f"the members' positions are NaN or inf from path step {int(bad_pos[0])} (0-based, of "
             f"{positions.size(0)}) on (the rollout "
             f"diverged: lower dt, or check the collision horizon)" if bad_pos.numel() else
             f"'path' is NaN or inf at step {int(bad_path[0])}" if bad_path.numel() else "the loss overflowed")
    warnings.warn(f"path_loss is not finite: {where}; this warning is shown once", RuntimeWarning, stacklevel=3)
    _warned_not_finite = True


def _check(reading: str, reduction: str, sigma: float) -> None:
    check_choice(reading, "reading", READINGS)
    check_choice(reduction, "reduction", REDUCTIONS)
    check_real(sigma, "sigma", 0.0, strict=True)


def _log_normal(x: Tensor, mean: Tensor, sigma: float) -> Tensor:
    d = x.size(-1)
    return -((x - mean) ** 2).sum(-1) / (2 * sigma**2) - 0.5 * d * math.log(2 * math.pi * sigma**2)


def _reduce(per_step: Tensor, reduction: str) -> Tensor:
    return per_step.mean() if reduction == "mean" else per_step.sum() if reduction == "sum" else per_step
