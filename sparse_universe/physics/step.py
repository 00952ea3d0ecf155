"""``PairForceStep``: the universe's engine driven by a fixed pair force (known-physics mode)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..neighbors import radius_graph
from ..neighbors.checks import check_box, check_edge_index, check_real
from ..neighbors.geometry import edge_vectors
from ..nn.collision_conv import NeighborSearch, contacts
from ..nn.inverse_distance_conv import as_edge_index
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

    ``bonds`` adds forces along fixed pairs whatever their distance (springs
    along a chain: :func:`chain` and :class:`Harmonic`).

    Args:
        potential (PairPotential, optional): e.g. :class:`LennardJones`, over the radius graph.
        dt (float): time step. (default: ``0.01``)
        sigma (float): std of the variational velocity. (default: ``0.0``)
        delta (float): softening of the contact weight :math:`1/\sqrt{r^2+\delta^2}`
            used by the waves' entangling rule. (default: ``1e-3``)
        box, periodic: periodic box, as in :func:`~sparse_universe.radius_graph`.
        neighbor_search (callable, optional): ``(pos, batch) -> edge_index`` with every
            pair within the cut-off, e.g. a :class:`~sparse_universe.NeighborList`'s
            ``update`` (what MD codes do: rebuilt only when particles moved).
            (default: :func:`~sparse_universe.radius_graph`)
        bonds (Tensor, optional): ``(2, B)`` bonded pairs, each once. (default: ``None``)
        bond (PairPotential, optional): the potential along every bond. (default: ``None``)
    """

    def __init__(self, potential: Optional[PairPotential] = None, dt: float = 0.01, sigma: float = 0.0,
                 delta: float = 1e-3, box: Optional[PerAxis] = None, periodic: Optional[PerAxis] = None,
                 neighbor_search: Optional[NeighborSearch] = None, bonds: Optional[Tensor] = None,
                 bond: Optional[PairPotential] = None) -> None:
        super().__init__()
        self.dt, self.sigma = check_real(dt, "dt", 0.0, strict=True), check_real(sigma, "sigma", 0.0)
        self.delta = check_real(delta, "delta", 0.0)
        if (bonds is None) != (bond is None) or (potential is None and bond is None):
            raise ValueError("Expected a 'potential', or 'bonds' together with a 'bond' potential, or both")
        if bonds is not None:
            bonds = check_edge_index(bonds, None, "bonds")  # ids checked against N at each step
        self.potential = potential
        self.box, self.periodic, self.bond, self.neighbor_search = box, periodic, bond, neighbor_search
        self.bonds = None if bonds is None else torch.cat([bonds, bonds.flip(0)], 1).long()  # both directions

    @property
    def eps(self) -> Optional[float]:
        """The collision distance: the potential's cut-off (``None`` with bonds only)."""
        return None if self.potential is None else self.potential.cutoff

    @property
    def search_radius(self) -> Optional[float]:
        """The cut-off of the pair search (``None`` with bonds only, which are not searched)."""
        return self.eps

    def graph(self, pos: Tensor, batch: Optional[Tensor]) -> Tensor:
        """Every pair within the potential's cut-off (none without a potential)."""
        if self.potential is None:
            return torch.zeros(2, 0, dtype=torch.long, device=pos.device)
        if self.neighbor_search is not None:
            return as_edge_index(self.neighbor_search(pos, batch), pos.size(0))
        return radius_graph(pos, self.potential.cutoff, batch, box=self.box, periodic=self.periodic)

    def contacts(self, pos: Tensor, edge_index: Tensor) -> Tuple[Tensor, Tensor]:
        """Edges within the cut-off and their softened inverse distances, as constants of ``pos``."""
        return contacts(pos, edge_index, self.eps, self.delta, check_box(self.box, self.periodic, pos))

    def terms(self, state: ParticleState, edge_index: Optional[Tensor] = None):
        """Per potential: ``(potential, edge_index, edge vectors, lengths, charge products)``.

        ``edge_index`` (every pair within the cut-off) is built if not given;
        bonds come both ways.
        """
        out = []
        for potential, edges in ((self.potential, edge_index), (self.bond, self.bonds)):
            if potential is None:
                continue
            given = edges is not None and edges is not self.bonds  # a caller's graph: checked below
            if edges is None:
                edges = self.graph(state.pos, state.batch)
            elif edges is self.bonds:
                check_edge_index(edges, state.num_particles, "bonds")
            vec, dist = edge_vectors(state.pos, edges, check_box(self.box, self.periodic, state.pos), validate=given)
            qq = None
            if potential.uses_charge:
                if state.charge is None:
                    raise ValueError(f"Expected a state with 'charge' for {potential.__class__.__name__}")
                qq = state.charge.index_select(0, edges[0]) * state.charge.index_select(0, edges[1])
            out.append((potential, edges, vec, dist, qq))
        return out

    def acceleration(self, state: ParticleState, edge_index: Optional[Tensor] = None) -> Tensor:
        """:math:`a_i = F_i / m_i` ``(N, d)``; ``edge_index`` must hold every pair within the cut-off."""
        total = torch.zeros_like(state.pos)
        for potential, edges, vec, dist, qq in self.terms(state, edge_index):
            force = (potential.force(dist, qq) / dist)[:, None] * vec  # on the target, from the source
            total = total + scatter(force, edges[1], 0, state.num_particles, "sum")
        return total if state.mass is None else total / state.mass[:, None]

    def potential_energy(self, state: ParticleState, edge_index: Optional[Tensor] = None) -> Tensor:
        """Potential energy of each universe ``(B,)``: every pair counted once (also of a ``DistributedState``)."""
        if type(state).__name__ == "DistributedState":
            from ..distributed.rollout import sum_pairs

            return sum_pairs(state, self, self.potential_energy)
        total = state.pos.new_zeros(num_universes(state))
        for potential, edges, _, dist, qq in self.terms(state, edge_index):
            per_edge = 0.5 * potential.energy(dist, qq)  # each unordered pair is two edges
            total = total + scatter(per_edge, state.batch.index_select(0, edges[1]), 0, total.numel(), "sum")
        return total

    def velocity(self, state: ParticleState, edge_index: Optional[Tensor] = None) -> Tensor:
        """The deterministic new velocity :math:`v + \\Delta t\\, a` ``(N, d)``."""
        return state.vel + self.dt * self.acceleration(state, edge_index)

    def forward(self, state: ParticleState, edge_index: Optional[Tensor] = None) -> ParticleState:
        """The next state; ``edge_index`` (every pair within the cut-off) replaces the neighbour search."""
        vel = self.velocity(state, edge_index)
        if self.training and self.sigma > 0:
            vel = vel + self.sigma * torch.randn_like(vel)  # the sample's value, the mean's gradient
        return state.evolve(*state.moving(state.pos + self.dt * vel, vel))

    def extra_repr(self) -> str:
        return f"dt={self.dt}, sigma={self.sigma}"
