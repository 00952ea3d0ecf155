r"""Seed 001's inference model: a Gaussian over measurements whose covariance is a universe of particles.

A stream of measurement vectors :math:`x_t \in \mathbb{R}^N` (one variable per
particle) is modelled as :math:`\mathcal{N}(x; \mu, \mathbf{K})` with

.. math::
    \mathbf{K}_{ii} = m_i, \qquad
    \mathbf{K}_{ij} = \frac{q_i q_j}{\sqrt{\lVert r_i - r_j \rVert^2 + \delta^2}} \quad (i \ne j)

(eq. 27-29: masses are variances, charges carry the sign of a covariance,
closeness its strength; :math:`\delta` softens coincident particles). The
positions :math:`r_i \in \mathbb{R}^D`, the masses and the charges are
learned by gradient descent on the stream, window by window, with the loss

.. math::
    \mathcal{L} = \frac{1}{W}\sum_{t \in \text{window}} -\log \mathcal{N}(x_t; \mu, \mathbf{K})
        + \frac{1}{W} \cdot \frac12 \sum_{d=1}^{D} v^{(d)\top} \mathbf{K} v^{(d)},
        \qquad v = r - r'

the likelihood of eq. 21-26 and the prior of eq. 46 (a Gaussian step from
the previous positions :math:`r'` with precision :math:`\mathbf{K}`; its
quadratic form is the kinetic term of eq. 51-59), both per measurement.

Readings of the seed, chosen here and why:

* The prior is over positions only (eq. 45, :math:`\Theta_x = r`): masses and
  charges get no gradient from it, and its normaliser, which at the seed's
  order is :math:`|\mathbf{K}| = \prod m_i` (eq. 44), does not depend on
  :math:`r`. Taken as a function of the masses, :math:`-\frac{D}{2}\log\prod m_i`
  would make the loss unbounded below (the :math:`-\frac{D-1}{2}\log\prod m_i`
  of eq. 60).
* ``approximation="exact"`` evaluates the Gaussian exactly (dense Cholesky,
  O(N^3); the default, for N up to a few thousand). The seed's first-order
  expansion of :math:`\mathbf{K}^{-1}` and :math:`\log|\mathbf{K}|` (eq. 32, 41)
  is linear in the covariances and has no minimum, so ``"second-order"``
  keeps the next term of both: sparse over the radius graph of the
  positions within ``cutoff``, O(W E), accurate while the correlations are
  weak (:math:`|\mathbf{K}_{ij}| \ll m_i`, the seed's regime).
* The mean :math:`\mu` is each window's sample mean (eq. 22 sets it to zero
  after shifting the measurements).
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter
from tqdm.auto import trange

from .neighbors import radius_graph
from .nn.collision_conv import complete_graph

APPROXIMATIONS = ("exact", "second-order")


class CovarianceUniverse(nn.Module):
    """Positions, log-masses and charges of ``N`` variables, and the loss above.

    Args:
        num_variables (int): ``N``.
        dim (int): ``D``, the dimension of the positions. (default: ``3``)
        softening (float): :math:`\\delta`. (default: ``0.5``)
        cutoff (float, optional): pairs farther apart have zero covariance
            (sparse); ``None`` keeps every pair. (default: ``None``)
        approximation (str): ``"exact"`` or ``"second-order"``. (default: ``"exact"``)
        spread (float): initial positions uniform in ``[0, spread]^D``. (default: ``3.0``)
    """

    def __init__(self, num_variables: int, dim: int = 3, softening: float = 0.5, cutoff: Optional[float] = None,
                 approximation: str = "exact", spread: float = 3.0) -> None:
        super().__init__()
        if approximation not in APPROXIMATIONS:
            raise ValueError(f"Expected 'approximation' in {APPROXIMATIONS} (got {approximation!r})")
        if num_variables < 2 or dim < 1:
            raise ValueError(f"Expected 'num_variables' >= 2 and 'dim' >= 1 (got {num_variables}, {dim})")
        self.softening, self.cutoff, self.approximation = float(softening), cutoff, approximation
        self.pos = nn.Parameter(torch.rand(num_variables, dim) * spread)
        self.log_mass = nn.Parameter(torch.zeros(num_variables))
        self.charge = nn.Parameter(0.1 * torch.randn(num_variables))

    @property
    def num_variables(self) -> int:
        return self.pos.size(0)

    def pairs(self, charge: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Directed pairs ``(2, E)`` with a covariance, and its value ``(E,)`` (``charge`` replaces the charges)."""
        pos, charge = self.pos, self.charge if charge is None else charge
        if self.cutoff is None:
            edge_index = complete_graph(torch.zeros(self.num_variables, dtype=torch.long, device=pos.device))
        else:
            edge_index = radius_graph(pos.detach(), self.cutoff)
        source, target = edge_index
        r2 = ((pos[source] - pos[target]) ** 2).sum(-1)
        return edge_index, charge[source] * charge[target] * torch.rsqrt(r2 + self.softening**2)

    def covariance(self) -> Tensor:
        """The dense ``(N, N)`` covariance :math:`\\mathbf{K}`."""
        (source, target), c = self.pairs()
        k = torch.diag(self.log_mass.exp())
        return k.index_put((target, source), c, accumulate=True)

    def nll(self, x: Tensor) -> Tensor:
        """Mean negative log-likelihood of the rows of ``x`` ``(W, N)`` around their mean."""
        x = x - x.mean(0)
        n = self.num_variables
        if self.approximation == "exact":
            chol, info = torch.linalg.cholesky_ex(self.covariance())
            if int(info):
                raise ValueError("The learned covariance is no longer positive definite: lower 'lr' or raise "
                                 "'softening'")
            z = torch.linalg.solve_triangular(chol, x.T, upper=False)  # (N, W)
            logdet = 2 * torch.log(torch.diagonal(chol)).sum()
            quad = (z * z).sum(0)
        else:  # second order in C / m for log|K| and K^-1, sparse over the pairs
            m = self.log_mass.exp()
            (source, target), c = self.pairs()
            a = c / (m[source] * m[target])
            logdet = self.log_mass.sum() - 0.5 * (c * a).sum()
            cross = (x[:, source] * x[:, target] * a).sum(1)
            y = scatter(x[:, source] * (c / m[source]), target, 1, n, "sum")  # (W, N)
            quad = (x * x / m).sum(1) - cross + (y * y / m).sum(1)
        return 0.5 * (logdet + quad.mean() + n * math.log(2 * math.pi))

    def prior(self, previous: Tensor) -> Tensor:
        """Eq. 46's quadratic form :math:`\\frac12\\sum_d v^{(d)\\top}\\mathbf{K}v^{(d)}` (masses and charges fixed)."""
        v = self.pos - previous
        m = self.log_mass.detach().exp()
        (source, target), c = self.pairs(self.charge.detach())
        return 0.5 * ((m * (v * v).sum(1)).sum() + (c * (v[source] * v[target]).sum(1)).sum())

    def loss(self, x: Tensor, previous: Tensor) -> Tensor:
        return self.nll(x) + self.prior(previous) / x.size(0)


def infer(measurements: Tensor, dim: int = 3, window: int = 500, epochs: int = 5, lr: float = 0.02,
          restarts: int = 1, progress: bool = True, seed: int = 0, **kwargs) -> Tuple[CovarianceUniverse, List[dict]]:
    """Learn a :class:`CovarianceUniverse` from a ``(T, N)`` stream, one Adam step per window.

    The masses start at the stream's variances, the positions at random.
    Positions make the loss non-convex (an embedding problem), so with
    ``restarts > 1`` several random starts (seeds ``seed, seed + 1, ...``)
    are trained and the one with the lowest mean loss over its last epoch
    is kept. Returns the model and its history, one row per window
    (restart, epoch, window, loss).
    """
    if measurements.dim() != 2 or measurements.size(0) < window or window < 2:
        raise ValueError(f"Expected measurements (T, N) with T >= window >= 2 (got {tuple(measurements.shape)}, "
                         f"window={window})")
    if not bool(torch.isfinite(measurements).all()):
        raise ValueError("Expected finite measurements (got NaN or inf)")
    if restarts < 1 or epochs < 1:
        raise ValueError(f"Expected 'restarts' >= 1 and 'epochs' >= 1 (got {restarts}, {epochs})")
    x = measurements.to(torch.float64)
    best = None
    for restart in range(restarts):
        torch.manual_seed(seed + restart)
        model = CovarianceUniverse(x.size(1), dim, **kwargs).double()
        with torch.no_grad():
            model.log_mass.copy_(torch.log(x.var(0)))
        history = _train(model, x, window, epochs, lr, restart, progress)
        final = sum(h["loss"] for h in history if h["epoch"] == epochs - 1)
        if best is None or final < best[0]:
            best = (final, model, history)
    return best[1], best[2]


def _train(model: CovarianceUniverse, x: Tensor, window: int, epochs: int, lr: float, restart: int,
           progress: bool) -> List[dict]:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history, windows = [], x.size(0) // window
    for epoch in trange(epochs, desc=f"infer (start {restart})", disable=not progress, leave=False):
        for w in range(windows):
            previous = model.pos.detach().clone()
            loss = model.loss(x[w * window:(w + 1) * window], previous)
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(dict(restart=restart, epoch=epoch, window=w, loss=loss.item()))
    return history


def relative_error(estimate: Tensor, truth: Tensor) -> float:
    """Frobenius :math:`\\lVert \\hat K - K \\rVert / \\lVert K \\rVert`."""
    return float((estimate - truth).norm() / truth.norm())
