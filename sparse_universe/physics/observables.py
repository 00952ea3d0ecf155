r"""Differentiable observables, per universe: energies, momentum, and seed 001's Hamiltonian.

Every pair sum runs over the radius graph within ``cutoff`` (sparse, O(N + E))
or, with ``cutoff=None``, over all pairs of each universe (exact, O(N^2); for
checking and small N). Results have one row per universe (the state's batch).

Seed 001's quantities, for particles with masses :math:`m_i`, charges
:math:`q_i`, momenta :math:`p_i = m_i v_i` in :math:`D` dimensions and a
measurement scale :math:`\epsilon`:

.. math::
    U &= \sum_i \sum_{j \ne i} \frac{\epsilon^2 q_i q_j}{2 r_{ij}}, \qquad
    A_i = \sum_{j \ne i} \frac{q_j v_j}{r_{ij}} \\
    \mathcal{H} &= U - \sum_i \frac{(p_i + q_i A_i)^2}{2 m_i} \quad \text{(eq. 70)}, \qquad
    \mathcal{M} = \sum_i \Big(\frac{D-1}{2}\log m_i - \frac{\epsilon^2 m_i}{2}\Big) \quad \text{(eq. 65, 69)} \\
    \mathcal{L}_x &= \mathcal{C} - \mathcal{M} - \mathcal{H}, \qquad
    \mathcal{C} = \frac{(D+1)N}{2}\log 2\pi \quad \text{(eq. 65-68)}

as in the seed (with :math:`M`, its number of particles, written :math:`N`
here). One reading is ours: eq. 69 prints :math:`\epsilon^2 m_i^2 / 2`, but
eq. 65, from which it follows, has :math:`\epsilon^2 m_i / 2`
(:math:`\mathbb{E}[x_i^2] / 2m_i` with :math:`\mathbb{E}[x_i] = \epsilon m_i`),
so :math:`\mathcal{M}` uses :math:`m_i`. Note the sign: the seed's :math:`\mathcal{H}` is the
Coulomb-like term *minus* the kinetic term with the vector potential.
Distances may be softened, :math:`r \to \sqrt{r^2 + \delta^2}`, so that
coincident particles stay finite.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from ..neighbors import radius_graph
from ..neighbors.checks import check_box
from ..neighbors.geometry import edge_vectors
from ..nn.collision_conv import complete_graph
from ..state import ParticleState, num_universes
from ..typing import PerAxis


def masses(state: ParticleState) -> Tensor:
    """``(N,)``: the state's masses, or ones."""
    return torch.ones_like(state.score, dtype=state.pos.dtype) if state.mass is None else state.mass


def charges(state: ParticleState) -> Tensor:
    if state.charge is None:
        raise ValueError("Expected a state with 'charge' set for a charge observable")
    return state.charge


def over_ranks(observable: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Let a per-universe sum over particles also take a ``DistributedState`` (summed over its ranks)."""
    @functools.wraps(observable)
    def wrapper(state: ParticleState, *args, **kwargs) -> Tensor:
        if type(state).__name__ == "DistributedState":
            return state.sum_over_ranks(lambda owned: observable(owned, *args, **kwargs))
        return observable(state, *args, **kwargs)
    return wrapper


def single_process(state: ParticleState, name: str) -> None:
    """Refuse a ``DistributedState`` in an observable that is not distributed, naming a way out."""
    if type(state).__name__ == "DistributedState":
        raise TypeError(f"Expected a ParticleState for {name} (not distributed yet; for a small universe pass "
                        f"dstate.gather(), or use PairForceStep.potential_energy with a Coulomb potential)")


@over_ranks
def kinetic_energy(state: ParticleState) -> Tensor:
    r""":math:`\sum_i m_i v_i^2 / 2` per universe ``(B,)``."""
    per = 0.5 * masses(state) * (state.vel * state.vel).sum(-1)
    return scatter(per, state.batch, 0, num_universes(state), "sum")


@over_ranks
def momentum(state: ParticleState) -> Tensor:
    r""":math:`\sum_i m_i v_i` per universe ``(B, d)``."""
    return scatter(masses(state)[:, None] * state.vel, state.batch, 0, num_universes(state), "sum")


def pairs(state: ParticleState, cutoff: Optional[float], box: Optional[PerAxis] = None,
          periodic: Optional[PerAxis] = None) -> Tuple[Tensor, Tensor]:
    """``edge_index`` of the pairs within ``cutoff`` (all pairs of each universe if ``None``) and their lengths."""
    if cutoff is None:
        edge_index = complete_graph(state.batch)
    else:
        edge_index = radius_graph(state.pos, cutoff, state.batch, box=box, periodic=periodic)
    _, dist = edge_vectors(state.pos, edge_index, check_box(box, periodic, state.pos), validate=False)
    return edge_index, dist


def _inverse(dist: Tensor, softening: float) -> Tensor:
    return (dist * dist + softening**2).rsqrt() if softening else 1.0 / dist


def coulomb_energy(state: ParticleState, eps: float = 1.0, cutoff: Optional[float] = None,
                   softening: float = 0.0, box: Optional[PerAxis] = None,
                   periodic: Optional[PerAxis] = None) -> Tensor:
    r"""Seed 001's :math:`\sum_{i \ne j} \epsilon^2 q_i q_j / (2 r_{ij})` per universe ``(B,)``."""
    single_process(state, "coulomb_energy")
    q = charges(state)
    (source, target), dist = pairs(state, cutoff, box, periodic)
    per_edge = 0.5 * eps**2 * q[source] * q[target] * _inverse(dist, softening)
    return scatter(per_edge, state.batch[target], 0, num_universes(state), "sum")


def vector_potential(state: ParticleState, cutoff: Optional[float] = None, softening: float = 0.0,
                     box: Optional[PerAxis] = None, periodic: Optional[PerAxis] = None) -> Tensor:
    r""":math:`A_i = \sum_{j \ne i} q_j v_j / r_{ij}` per particle ``(N, d)``."""
    single_process(state, "vector_potential")
    q = charges(state)
    (source, target), dist = pairs(state, cutoff, box, periodic)
    msg = (q[source] * _inverse(dist, softening))[:, None] * state.vel[source]
    return scatter(msg, target, 0, state.num_particles, "sum")


def seed_hamiltonian(state: ParticleState, eps: float = 1.0, cutoff: Optional[float] = None,
                     softening: float = 0.0, box: Optional[PerAxis] = None,
                     periodic: Optional[PerAxis] = None) -> Tensor:
    r"""Seed 001's :math:`\mathcal{H}` (eq. 70) per universe ``(B,)``."""
    single_process(state, "seed_hamiltonian")
    m, q = masses(state), charges(state)
    a = vector_potential(state, cutoff, softening, box, periodic)
    kinetic = ((m[:, None] * state.vel + q[:, None] * a) ** 2).sum(-1) / (2 * m)
    u = coulomb_energy(state, eps, cutoff, softening, box, periodic)
    return u - scatter(kinetic, state.batch, 0, num_universes(state), "sum")


@over_ranks
def seed_mass_term(state: ParticleState, eps: float = 1.0) -> Tensor:
    r"""Seed 001's :math:`\mathcal{M}` (eq. 69, with eq. 65's :math:`m_i`; see the module) per universe ``(B,)``."""
    m = masses(state)
    per = 0.5 * (state.dim - 1) * torch.log(m) - 0.5 * eps**2 * m
    return scatter(per, state.batch, 0, num_universes(state), "sum")


def seed_loss(state: ParticleState, eps: float = 1.0, cutoff: Optional[float] = None, softening: float = 0.0,
              box: Optional[PerAxis] = None, periodic: Optional[PerAxis] = None) -> Tensor:
    r"""Seed 001's :math:`\mathcal{L}_x = \mathcal{C} - \mathcal{M} - \mathcal{H}` (eq. 65-67) per universe ``(B,)``."""
    single_process(state, "seed_loss")
    count = scatter(torch.ones_like(state.score), state.batch, 0, num_universes(state), "sum")
    c = 0.5 * (state.dim + 1) * count * math.log(2 * math.pi)
    return c - seed_mass_term(state, eps) - seed_hamiltonian(state, eps, cutoff, softening, box, periodic)
