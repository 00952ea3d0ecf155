"""``PairForceStep``: the universe's engine driven by a fixed pair force (known-physics mode)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..neighbors import radius_graph
from ..neighbors.checks import check_box
from ..neighbors.geometry import edge_vectors, exact_r2
from ..nn.inverse_distance_conv import inverse_distance
from ..state import ParticleState
from ..typing import PerAxis
from .potentials import PairPotential


class PairForceStep(nn.Module):
    r"""One step of Newtonian particles under a fixed pair potential (unit masses).

    .. math::
        a_i = \sum_{j:\, r_{ij} \le r_c} -u'(r_{ij})\, \frac{x_i - x_j}{r_{ij}}, \qquad
        v'_i = v_i + \Delta t\, a_i, \qquad x'_i = x_i + \Delta t\, v'_i

    the seed's update order (velocity first, then ``x += v``), i.e. the
    semi-implicit Euler method. The pairs come from the same exact radius graph
    as the learned universe (``r_c`` = the potential's cut-off), so this is the
    engine with known physics in place of the MLPs: a check of the engine as a
    simulator, and a fixed world for waves (walls of ``fixed`` particles).
    Gradients flow through the forces to positions and velocities.

    With ``sigma > 0`` and in training mode, the new velocity is sampled as in
    the seed's variational velocity, :math:`v' + \varphi(\nu - v')`,
    :math:`\nu \sim \mathcal{N}(v', \sigma^2 I)`.

    Args:
        potential (PairPotential): e.g. :class:`LennardJones`.
        dt (float): time step. (default: ``0.01``)
        sigma (float): std of the variational velocity. (default: ``0.0``)
        delta (float): softening of the contact weight :math:`1/\sqrt{r^2+\delta^2}`
            used by the waves' entangling rule. (default: ``1e-3``)
        box, periodic: periodic box, as in :func:`~sparse_universe.radius_graph`.
    """

    def __init__(self, potential: PairPotential, dt: float = 0.01, sigma: float = 0.0, delta: float = 1e-3,
                 box: Optional[PerAxis] = None, periodic: Optional[PerAxis] = None) -> None:
        super().__init__()
        if not dt > 0 or not sigma >= 0:
            raise ValueError(f"Expected 'dt' > 0 and 'sigma' >= 0 (got dt={dt}, sigma={sigma})")
        self.potential, self.dt, self.sigma, self.delta = potential, float(dt), float(sigma), float(delta)
        self.box, self.periodic = box, periodic

    def graph(self, pos: Tensor, batch: Optional[Tensor]) -> Tensor:
        """Every pair within the potential's cut-off."""
        return radius_graph(pos, self.potential.cutoff, batch, box=self.box, periodic=self.periodic)

    def contacts(self, pos: Tensor, edge_index: Tensor) -> Tuple[Tensor, Tensor]:
        """Edges within the cut-off and their softened inverse distances, as constants of ``pos``."""
        _, dist = edge_vectors(pos.detach(), edge_index, check_box(self.box, self.periodic, pos))
        return dist * dist <= exact_r2(self.potential.cutoff, dist.dtype), inverse_distance(dist, self.delta)

    def acceleration(self, state: ParticleState, edge_index: Optional[Tensor] = None) -> Tensor:
        """:math:`a_i` ``(N, d)``; ``edge_index`` must hold every pair within the cut-off."""
        if edge_index is None:
            edge_index = self.graph(state.pos, state.batch)
        vec, dist = edge_vectors(state.pos, edge_index, check_box(self.box, self.periodic, state.pos))
        force = (self.potential.force(dist) / dist)[:, None] * vec  # on the target, from the source
        return scatter(force, edge_index[1], 0, state.num_particles, "sum")

    def velocity(self, state: ParticleState, edge_index: Optional[Tensor] = None) -> Tensor:
        """The deterministic new velocity :math:`v + \\Delta t\\, a` ``(N, d)``."""
        return state.vel + self.dt * self.acceleration(state, edge_index)

    def forward(self, state: ParticleState) -> ParticleState:
        vel = self.velocity(state)
        if self.training and self.sigma > 0:
            vel = vel + self.sigma * torch.randn_like(vel)  # the sample's value, the mean's gradient
        return state.evolve(*state.moving(state.pos + self.dt * vel, vel))

    def extra_repr(self) -> str:
        return f"dt={self.dt}, sigma={self.sigma}"
