"""Supervision of trajectories: the seed's centroid-path objective."""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor

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

    ``positions`` are a rollout's ``(T + 1, N, d)``: row 0 is the given start,
    so the path :math:`\ell_0 \ldots \ell_{T-1}` is compared with rows
    ``1 .. T`` (where the particles are after each step). A ``(T, N, d)``
    tensor is compared row by row.

    Args:
        positions (Tensor): ``(T + 1, N, d)`` or ``(T, N, d)``.
        path (Tensor): ``(T, d)`` centroid path.
        members: indices ``(|L|,)``, a bool mask ``(N,)``, or a token id (then pass ``token``).
        sigma (float): std of the Gaussians. (default: ``1.0``)
        token (Tensor, optional): ``(N,)`` token ids, for ``members`` given as an id.
        reading (str): ``"density"`` or ``"particle"``. (default: ``"density"``)
        reduction (str): over time, ``"mean"``, ``"sum"`` or ``"none"`` (shape ``(T,)``).
            (default: ``"mean"``)
    """
    if reading not in READINGS or reduction not in REDUCTIONS:
        raise ValueError(
            f"Expected reading in {READINGS} and reduction in {REDUCTIONS} (got {reading!r}, {reduction!r})"
        )
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
    if not sigma > 0:
        raise ValueError(f"Expected 'sigma' > 0 (got {sigma})")
    idx = select_members(members, positions.size(1), token)
    x = positions.index_select(1, idx)  # (T, |L|, d)
    d = x.size(-1)
    log_n = -((x - path[:, None, :]) ** 2).sum(-1) / (2 * sigma**2) - 0.5 * d * math.log(2 * math.pi * sigma**2)
    if reading == "density":
        per_step = -(torch.logsumexp(log_n, dim=1) - math.log(idx.numel()))  # (T,)
    else:
        per_step = -log_n.mean(dim=1)
    return per_step.mean() if reduction == "mean" else per_step.sum() if reduction == "sum" else per_step
