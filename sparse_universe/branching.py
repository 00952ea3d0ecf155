"""Wave-particle duality: particles spread into copies (extra graph nodes) and collapse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax

from .neighbors.checks import check_int, check_real
from .nn import UniverseStep
from .state import ParticleState


@dataclass
class WaveState:
    """The copies of every particle: one graph node per copy.

    ``copies.score`` holds the measurement scores :math:`k^{(i,j)}`;
    ``particle`` maps each copy to its particle, like PyG's batch vector maps
    nodes to graphs (and ``copies.batch`` still says which universe it is in).

    Shapes:
        copies: ``M`` nodes; particle ``(M,)`` with values in ``[0, num_particles)``.
    """

    copies: ParticleState
    particle: Tensor
    num_particles: int

    def __post_init__(self) -> None:
        m = self.copies.num_particles
        if self.particle.shape != (m,) or self.particle.dtype.is_floating_point:
            raise ValueError(f"Expected an integer 'particle' index of shape ({m},), one per copy "
                             f"(got {self.particle.dtype} of shape {tuple(self.particle.shape)})")
        if m and (int(self.particle.min()) < 0 or int(self.particle.max()) >= self.num_particles):
            raise ValueError(f"Expected 'particle' ids in [0, {self.num_particles}) (got "
                             f"[{int(self.particle.min())}, {int(self.particle.max())}])")

    @classmethod
    def from_particles(cls, state: ParticleState) -> WaveState:
        """One copy per particle, every score :math:`k = 1` (the seed's initialisation)."""
        ids = torch.arange(state.num_particles, device=state.pos.device)
        return cls(state.replace(score=torch.ones_like(state.score)), ids, state.num_particles)

    def copies_per_particle(self) -> Tensor:
        return torch.bincount(self.particle, minlength=self.num_particles)


class BranchManager(nn.Module):
    r"""One step of the seed's wave universe over copies :math:`p^{(i,j)}`.

    1. Every copy's deterministic velocity :math:`\hat v` comes from ``step``
       over the collision graph of all copies (copies of one particle do not
       collide unless ``interact_within``).
    2. Entangling rule, at the current positions:
       :math:`k^{(i,j)} \mathrel{+}= \sum_b \Gamma\, w(\lVert x^{(i,j)} - x^{(b)} \rVert)`,
       with the collision layer's softened :math:`w = 1/\sqrt{r^2+\delta^2}`
       (a constant of the positions, like a measurement count).
    3. Each copy samples ``H`` velocity heads :math:`v_\omega = \hat v + \varphi(\sigma\epsilon)`
       (in training mode with ``sigma > 0``; in eval mode heads coincide).
    4. Of the candidate heads of a particle, ``K`` are kept by Gumbel top-K on
       the scores (sampling without replacement, :math:`P \propto e^{k}`); this
       is the truncation before the next step's first MLP layer. The kept
       velocities are multiplied by :math:`1 + s - \varphi(s)`, :math:`s` the
       softmax of the perturbed keys: 1 in value, a path for gradients to the
       scores.
    5. Copies move, :math:`x \mathrel{+}= \Delta t\, v`, and each particle is
       measured at one copy drawn from :math:`\mathrm{softmax}_j k^{(i,j)}`, with
       a straight-through one-hot (value: the drawn copy; gradient: the
       expectation under the softmax).

    With ``K = H = 1`` nothing is branched or drawn beyond the step's own
    variational velocity, and a rollout equals the particle universe's.
    Particles marked ``fixed`` (obstacles) keep one copy that never moves.

    ``step`` is a :class:`~sparse_universe.nn.UniverseStep` or any module with
    the same ``velocity(state, edge_index)``, ``graph(pos, batch)``,
    ``contacts(pos, edge_index)``, ``dt`` and ``sigma``, such as the
    known-physics :class:`~sparse_universe.physics.PairForceStep`.

    Args:
        step (UniverseStep): the particle dynamics (see above).
        num_copies (int): ``K >= 1`` copies kept per particle.
        num_heads (int): ``H >= 1`` velocity heads per copy.
        sigma (float, optional): std of the heads. (default: ``step.sigma``)
        interact_within (bool): let copies of one particle collide. (default: ``False``)
        temperature (float): of the relaxed top-K weights. (default: ``1.0``)
    """

    def __init__(self, step: UniverseStep, num_copies: int = 4, num_heads: int = 4,
                 sigma: Optional[float] = None, interact_within: bool = False, temperature: float = 1.0) -> None:
        super().__init__()
        self.step = step
        self.num_copies, self.num_heads = check_int(num_copies, "num_copies", 1), check_int(num_heads, "num_heads", 1)
        self.sigma = check_real(step.sigma if sigma is None else sigma, "sigma", 0.0)
        self.interact_within, self.temperature = interact_within, check_real(temperature, "temperature", 0.0, True)

    def forward(self, wave: WaveState, edge_index: Optional[Tensor] = None) -> Tuple[WaveState, Tensor]:
        """Advance every copy one step; return the new wave and measured positions ``(N, d)``.

        ``edge_index`` replaces :meth:`graph` (e.g. only some receivers, on one rank of a decomposed universe).
        """
        copies, particle = wave.copies, wave.particle
        edge_index = self.graph(copies, particle) if edge_index is None else edge_index
        v_hat = self.step.velocity(copies, edge_index)  # (M, d)
        score = copies.score + self.entangle(copies, edge_index)  # (M,)
        ids = torch.arange(copies.num_particles, device=v_hat.device)
        if copies.fixed is None:
            owner = ids.repeat_interleave(self.num_heads)  # (M * H,), heads of a copy adjacent
        else:  # an obstacle keeps one copy, one head: its own velocity
            v_hat = torch.where(copies.fixed[:, None], copies.vel, v_hat)
            owner = ids.repeat_interleave(torch.where(copies.fixed, 1, self.num_heads))
        heads = v_hat.index_select(0, owner)
        if self.training and self.sigma > 0:
            noise = self.sigma * torch.randn_like(heads)
            heads = heads + (noise if copies.fixed is None else noise * ~copies.fixed.index_select(0, owner)[:, None])
        keep, weight = self.prune(score.index_select(0, owner), particle.index_select(0, owner),
                                  wave.num_particles)
        owner = owner.index_select(0, keep)
        vel = heads.index_select(0, keep) * weight[:, None]
        kept = copies.select(owner, score=score.index_select(0, owner))
        new = kept.evolve(*kept.moving(kept.pos + self.step.dt * vel, vel))
        new_wave = WaveState(new, particle.index_select(0, owner), wave.num_particles)
        return new_wave, self.collapse(new_wave)

    def graph(self, copies: ParticleState, particle: Tensor) -> Tensor:
        """Pairs of copies within the step's search radius, same-particle pairs removed."""
        edge_index = self.step.graph(copies.pos, copies.batch)
        if self.interact_within:
            return edge_index
        return edge_index[:, particle.index_select(0, edge_index[0]) != particle.index_select(0, edge_index[1])]

    def entangle(self, copies: ParticleState, edge_index: Tensor) -> Tensor:
        r""":math:`\sum_b \Gamma\, w(r)` over each copy's collision partners ``(M,)``.

        Counted like a measurement: a constant of the positions (no gradient
        through the distances); gradients reach the scores through pruning
        and collapse. :math:`\Gamma` and :math:`w` are the step's ``contacts``.
        """
        hit, w = self.step.contacts(copies.pos, edge_index)
        return scatter(w[hit], edge_index[1][hit], 0, copies.num_particles, "sum").to(copies.score.dtype)

    def prune(self, score: Tensor, group: Tensor, num_groups: int) -> Tuple[Tensor, Tensor]:
        """Gumbel top-K per group: kept candidate indices (ascending) and their straight-through weights."""
        count = torch.bincount(group, minlength=num_groups)
        if int(count.max()) <= self.num_copies:  # nothing to truncate, nothing to draw
            return torch.arange(score.numel(), device=score.device), torch.ones_like(score)
        key = score - torch.log(-torch.log(torch.rand_like(score).clamp_min(1e-20)))  # + Gumbel(0, 1)
        order = torch.argsort(key.detach(), descending=True, stable=True)
        order = order.index_select(0, torch.argsort(group.index_select(0, order), stable=True))  # by group, key desc
        start = torch.cumsum(count, 0) - count
        rank = torch.arange(score.numel(), device=score.device) - start.index_select(0, group.index_select(0, order))
        keep = torch.sort(order[rank < self.num_copies]).values
        soft = softmax(key / self.temperature, group, num_nodes=num_groups)
        return keep, (1.0 + (soft - soft.detach())).index_select(0, keep)  # exactly 1 in value

    def collapse(self, wave: WaveState) -> Tensor:
        """Measured positions ``(N, d)``: one copy per particle drawn from softmax(k), straight-through."""
        copies, particle, n = wave.copies, wave.particle, wave.num_particles
        if copies.num_particles == n:  # one copy each: the measurement is that copy
            return copies.pos.new_zeros(n, copies.dim).index_copy(0, particle, copies.pos)
        prob = softmax(copies.score, particle, num_nodes=n)  # (M,)
        key = torch.log(prob.detach().clamp_min(1e-30)) - torch.log(-torch.log(torch.rand_like(prob).clamp_min(1e-20)))
        best = scatter(key, particle, 0, n, "max").index_select(0, particle)
        hard = (key == best).to(prob.dtype)  # the drawn copy (ties have probability 0)
        weight = hard + (prob - prob.detach())  # exactly the one-hot in value
        return scatter(weight[:, None] * copies.pos, particle, 0, n, "sum")

    def extra_repr(self) -> str:
        return (f"num_copies={self.num_copies}, num_heads={self.num_heads}, sigma={self.sigma}, "
                f"interact_within={self.interact_within}")
