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
from ..state import ParticleState, num_universes
from ..typing import PerAxis
from .potentials import PairPotential


class PairForceStep(nn.Module):
    r"""One step of Newtonian particles under a fixed pair potential.

    .. math::
        a_i = \frac{1}{m_i} \sum_{j:\, r_{ij} \le r_c} -u'(r_{ij})\, \frac{x_i - x_j}{r_{ij}}, \qquad
        v'_i = v_i + \Delta t\, a_i, \qquad x'_i = x_i + \Delta t\, v'_i

    the seed's update order (velocity first, then ``x += v``), i.e. the
    semi-implicit Euler method. The pairs come from the same exact radius graph
    as the learned universe (``r_c`` = the potential's cut-off), so this is the
    engine with known physics in place of the MLPs: a check of the engine as a
    simulator, and a fixed world for waves (walls of ``fixed`` particles).
    Gradients flow through the forces to positions and velocities. Masses
    and charges come from the state (unit masses when it has none).

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

    @property
    def eps(self) -> float:
        """The collision distance: the potential's cut-off."""
        return self.potential.cutoff

    def graph(self, pos: Tensor, batch: Optional[Tensor]) -> Tensor:
        """Every pair within the potential's cut-off."""
        return radius_graph(pos, self.potential.cutoff, batch, box=self.box, periodic=self.periodic)

    def contacts(self, pos: Tensor, edge_index: Tensor) -> Tuple[Tensor, Tensor]:
        """Edges within the cut-off and their softened inverse distances, as constants of ``pos``."""
        _, dist = edge_vectors(pos.detach(), edge_index, check_box(self.box, self.periodic, pos))
        return dist * dist <= exact_r2(self.potential.cutoff, dist.dtype), inverse_distance(dist, self.delta)

    def pairs(self, state: ParticleState, edge_index: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor,
                                                                                       Optional[Tensor]]:
        """``edge_index`` (built if not given), edge vectors, lengths and charge products of every pair."""
        if edge_index is None:
            edge_index = self.graph(state.pos, state.batch)
        vec, dist = edge_vectors(state.pos, edge_index, check_box(self.box, self.periodic, state.pos))
        qq = None
        if self.potential.uses_charge:
            if state.charge is None:
                raise ValueError(f"Expected a state with 'charge' for {self.potential.__class__.__name__}")
            qq = state.charge.index_select(0, edge_index[0]) * state.charge.index_select(0, edge_index[1])
        return edge_index, vec, dist, qq

    def acceleration(self, state: ParticleState, edge_index: Optional[Tensor] = None) -> Tensor:
        """:math:`a_i = F_i / m_i` ``(N, d)``; ``edge_index`` must hold every pair within the cut-off."""
        edge_index, vec, dist, qq = self.pairs(state, edge_index)
        force = (self.potential.force(dist, qq) / dist)[:, None] * vec  # on the target, from the source
        total = scatter(force, edge_index[1], 0, state.num_particles, "sum")
        return total if state.mass is None else total / state.mass[:, None]

    def potential_energy(self, state: ParticleState, edge_index: Optional[Tensor] = None) -> Tensor:
        """Potential energy of each universe ``(B,)``: every pair counted once."""
        edge_index, _, dist, qq = self.pairs(state, edge_index)
        per_edge = 0.5 * self.potential.energy(dist, qq)  # each unordered pair is two edges
        return scatter(per_edge, state.batch.index_select(0, edge_index[1]), 0, num_universes(state), "sum")

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
