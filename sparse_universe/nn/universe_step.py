"""``UniverseStep``: one time step of the differentiable universe."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..neighbors.checks import check_box, check_choice, check_int, check_real
from ..neighbors.geometry import edge_vectors
from ..state import ParticleState
from ..typing import PerAxis
from .codebook import TokenCodebook
from .collision_conv import CollisionConv, NeighborSearch, straight_through

MODES = ("concat", "sum")


def mlp(in_channels: int, hidden: int, out_channels: int, layer_norm: bool) -> nn.Sequential:
    """Two-layer MLP, pre-normalised (Transformer convention) when ``layer_norm``."""
    layers = [nn.LayerNorm(in_channels)] if layer_norm else []
    return nn.Sequential(*layers, nn.Linear(in_channels, hidden), nn.SiLU(), nn.Linear(hidden, out_channels))


class UniverseStep(nn.Module):
    r"""One step of the seed's universe: collide, update velocity, move.

    .. math::
        \mathbf{a}_i &= \sum_j \Gamma_{ij}\, w(r_{ij})\,
            \mathrm{Linear}(v_j : \varsigma_j : \tau_j)
            \quad \text{(CollisionConv, straight-through surrogate)} \\
        \hat v_i &= \mathrm{MLP}_2\big(v_i : \mathrm{MLP}_1(\mathbf{a}_i)\big)
            \quad \text{(mode "concat", the seed's sparse step; "sum":
            } \mathrm{MLP}_2(v_i + \mathrm{MLP}_1(\mathbf{a}_i))\text{)} \\
        v'_i &= \hat v_i + \varphi(\nu_i - \hat v_i), \quad \nu_i \sim \mathcal{N}(\hat v_i, \sigma^2 I)
            \quad \text{(training only)} \\
        x'_i &= x_i + \Delta t\, v'_i

    Readings of the seed, chosen here: the token :math:`\tau` is the row of a
    learnable :class:`TokenCodebook` in :math:`\mathbb{R}^d`; with ``inertia``
    MLP2 gives an acceleration, :math:`\hat v_i = v_i + \Delta t\,\mathrm{MLP}_2(\ldots)`,
    and its last layer starts at zero, so an untrained universe moves freely
    (Newton's first law; the zero-initialised residual branch of deep nets);
    ``dt`` is the time quantum (the seed uses 1); in eval mode the variational
    sample is skipped, so the step is deterministic. Particles marked
    ``fixed`` in the state send messages but keep their position and velocity.

    With ``momentum_conserving`` the velocity update is instead a sum of
    antisymmetric pair forces :math:`f_{ij} = q_i q_j\, w(r_{ij})^2 (x_i - x_j)`
    with learned charges :math:`q = \mathrm{Linear}(\ldots)`, so
    :math:`\sum_i m v_i` (unit masses) is conserved per universe to float
    precision; the variational noise is then centred per universe so that it
    conserves momentum too.

    Args:
        dim (int): spatial dimension :math:`d`.
        num_tokens (int): codebook size :math:`M`.
        hidden (int): width of the messages and MLPs. (default: ``64``)
        eps (float): collision distance :math:`\epsilon`. (default: ``1.0``)
        dt (float): time quantum. (default: ``1.0``)
        mode (str): ``"concat"`` or ``"sum"``. (default: ``"concat"``)
        inertia (bool): residual velocity update. (default: ``False``)
        layer_norm (bool): pre-LayerNorm in both MLPs. (default: ``False``)
        sigma (float): std of the variational velocity; ``0`` turns it off. (default: ``1.0``)
        self_features (bool): also feed the particle's own spin and token to MLP2,
            :math:`\mathrm{MLP}_2(v_i : \mathrm{MLP}_1(\mathbf{a}_i) : \varsigma_i : \tau_i)`.
            In the seed's form a particle sees its own attributes only through
            its velocity (the sum runs over neighbours), so all particles share
            one dynamics. (default: ``False``)
        momentum_conserving (bool): antisymmetric pair forces. (default: ``False``)
        surrogate, surrogate_radius, delta, normalize, neighbor_search, box, periodic:
            as in :class:`CollisionConv`.

    Shapes:
        a :class:`ParticleState` of ``N`` particles in ``d`` dimensions -> the next one.
    """

    def __init__(self, dim: int, num_tokens: int, hidden: int = 64, eps: float = 1.0, *, dt: float = 1.0,
                 mode: str = "concat", inertia: bool = False, layer_norm: bool = False, sigma: float = 1.0,
                 self_features: bool = False,
                 momentum_conserving: bool = False, surrogate: Optional[str] = "radius",
                 surrogate_radius: Optional[float] = None, delta: float = 1e-3, normalize: bool = False,
                 neighbor_search: Optional[NeighborSearch] = None, box: Optional[PerAxis] = None,
                 periodic: Optional[PerAxis] = None) -> None:
        super().__init__()
        self.dim, hidden = check_int(dim, "dim", 1), check_int(hidden, "hidden", 1)
        self.mode = check_choice(mode, "mode", MODES)
        self.dt, self.sigma = check_real(dt, "dt", 0.0, strict=True), check_real(sigma, "sigma", 0.0)
        self.inertia = inertia
        self.momentum_conserving, self.self_features = momentum_conserving, self_features
        self.codebook = TokenCodebook(num_tokens, dim)
        out = 1 if momentum_conserving else hidden
        self.collide = CollisionConv(3 * dim, out, eps, surrogate, surrogate_radius, delta, normalize,
                                     neighbor_search, box, periodic)
        if not momentum_conserving:
            self.mlp1 = mlp(hidden, hidden, dim if mode == "sum" else hidden, layer_norm)
            own = 2 * dim if self_features else 0  # the particle's own spin and token
            self.mlp2 = mlp((dim if mode == "sum" else dim + hidden) + own, hidden, dim, layer_norm)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.codebook.reset_parameters()
        self.collide.reset_parameters()
        if not self.momentum_conserving:
            for layer in (*self.mlp1, *self.mlp2):
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()
            if self.inertia:  # zero-init the residual branch: an untrained universe moves freely
                nn.init.zeros_(self.mlp2[-1].weight)
                nn.init.zeros_(self.mlp2[-1].bias)

    def forward(self, state: ParticleState, edge_index: Optional[Tensor] = None) -> ParticleState:
        """The next state; ``edge_index`` as in :meth:`velocity`."""
        vel = self._sample(self.velocity(state, edge_index), state.batch)
        return state.evolve(*state.moving(state.pos + self.dt * vel, vel))

    def velocity(self, state: ParticleState, edge_index: Optional[Tensor] = None) -> Tensor:
        r"""The deterministic new velocity :math:`\hat v` ``(N, d)``, before any sampling.

        ``edge_index`` (every pair within the collision layer's search radius)
        replaces the layer's own neighbour search, e.g. to keep copies of one
        particle from colliding.
        """
        if state.dim != self.dim:
            raise ValueError(f"Expected a state in {self.dim} dimensions (got d={state.dim})")
        tokens = self.codebook(state.token)  # (N, d)
        features = torch.cat([state.vel, state.spin, tokens], dim=-1)  # (N, 3d)
        if self.momentum_conserving:
            return state.vel + self.dt * self._pair_forces(features, state, edge_index)
        agg = self.collide(features, state.pos, state.batch, edge_index)  # (N, hidden)
        inner = self.mlp1(agg)
        parts = [state.vel + inner] if self.mode == "sum" else [state.vel, inner]
        if self.self_features:
            parts += [state.spin, tokens]
        v_hat = self.mlp2(torch.cat(parts, -1))
        return state.vel + self.dt * v_hat if self.inertia else v_hat

    @property
    def eps(self) -> float:
        r"""The collision distance :math:`\epsilon`."""
        return self.collide.eps

    @property
    def search_radius(self) -> float:
        """How far apart two particles can be and still affect each other's step (value or gradient)."""
        return self.collide.search_radius

    def graph(self, pos: Tensor, batch: Optional[Tensor]) -> Tensor:
        """Every pair within the collision layer's search radius (see :meth:`CollisionConv.graph`)."""
        return self.collide.graph(pos, batch)

    def contacts(self, pos: Tensor, edge_index: Tensor) -> Tuple[Tensor, Tensor]:
        """Colliding edges and their softened inverse distances (see :meth:`CollisionConv.contacts`)."""
        return self.collide.contacts(pos, edge_index)

    def _pair_forces(self, features: Tensor, state: ParticleState, edge_index: Optional[Tensor]) -> Tensor:
        """Acceleration from antisymmetric pair forces, straight-through like CollisionConv."""
        collide = self.collide
        box = check_box(collide.box, collide.periodic, state.pos)
        charge = collide.conv.lin(features).squeeze(-1)  # (N,)
        if edge_index is None:
            edge_index = collide.graph(state.pos, state.batch)
        source, target = edge_index
        vec, dist = edge_vectors(state.pos, edge_index, box, validate=False)  # x_i - x_j; the graph is checked
        w = collide.conv.weight_of(dist)
        force = (charge[target] * charge[source] * w * w)[:, None] * vec  # f_ji = -f_ij exactly
        surrogate = scatter(force, target, 0, state.num_particles, "sum")
        if collide.surrogate is None:
            return surrogate
        gamma = collide.collides(state.pos, edge_index, box)[:, None]
        with torch.no_grad():  # only its value is used
            sparse = scatter(force * gamma, target, 0, state.num_particles, "sum")
        return straight_through(sparse, surrogate)

    def _sample(self, v_hat: Tensor, batch: Tensor) -> Tensor:
        """Straight-through variational velocity: value of the sample, gradient of the mean."""
        if not self.training or self.sigma == 0:
            return v_hat
        noise = self.sigma * torch.randn_like(v_hat)
        if self.momentum_conserving:  # centre per universe: the noise carries no momentum
            noise = noise - scatter(noise, batch, 0, reduce="mean").index_select(0, batch)
        return v_hat + noise

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, mode={self.mode!r}, dt={self.dt}, inertia={self.inertia}, sigma={self.sigma}, "
                f"momentum_conserving={self.momentum_conserving}")
