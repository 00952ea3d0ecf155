"""``ParticleState``: the particles of one or many universes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data

from .neighbors.checks import check_int, check_pos

FIELDS = ("pos", "vel", "spin", "token", "score", "batch")
#: Optional per-particle fields, ``None`` when absent: ``fixed`` is bool, the others floating like ``pos``.
OPTIONAL = ("fixed", "mass", "charge")


@dataclass
class ParticleState:
    r"""Position, velocity, spin, token and measurement score of every particle.

    The seed's particle :math:`p^{(i)} = (x, v, \varsigma, \tau, k)`. The token
    is stored as an index into a :class:`~sparse_universe.nn.TokenCodebook` of
    ``M`` learnable vectors in :math:`\mathbb{R}^d`; ``batch`` says which
    universe a particle belongs to (PyG's batch vector), so many universes
    step at once without meeting.

    ``fixed`` (optional) marks obstacles, e.g. the walls of a double slit:
    they take part in every collision but neither move nor branch. ``mass``
    (positive) and ``charge`` (optional) are read by the physics
    (:mod:`sparse_universe.physics`); absent, every mass is 1. A charge may
    come from the spin if a model wants one, e.g. ``charge=spin[:, 0]`` or a
    learned ``Linear(spin)``; the state itself keeps them separate.

    Shapes:
        pos, vel, spin ``(N, d)``; token ``(N,)`` int64; score ``(N,)``;
        batch ``(N,)`` int64; fixed ``(N,)`` bool, mass and charge ``(N,)``, or ``None``.
    """

    pos: Tensor
    vel: Tensor
    spin: Tensor
    token: Tensor
    score: Tensor
    batch: Tensor
    fixed: Optional[Tensor] = None
    mass: Optional[Tensor] = None
    charge: Optional[Tensor] = None

    def __init__(self, pos: Tensor, vel: Optional[Tensor] = None, spin: Optional[Tensor] = None,
                 token: Optional[Tensor] = None, score: Optional[Tensor] = None,
                 batch: Optional[Tensor] = None, num_tokens: Optional[int] = None,
                 fixed: Optional[Tensor] = None, mass: Optional[Tensor] = None,
                 charge: Optional[Tensor] = None) -> None:
        pos = check_pos(pos)
        n = pos.size(0)
        self.pos = pos
        self.vel = torch.zeros_like(pos) if vel is None else vel
        self.spin = torch.zeros_like(pos) if spin is None else spin
        self.token = torch.zeros(n, dtype=torch.long, device=pos.device) if token is None else token
        self.score = torch.ones(n, dtype=pos.dtype, device=pos.device) if score is None else score
        self.batch = torch.zeros(n, dtype=torch.long, device=pos.device) if batch is None else batch
        self.fixed, self.mass, self.charge = fixed, mass, charge
        self.validate(num_tokens)

    def validate(self, num_tokens: Optional[int] = None) -> ParticleState:
        """Check shapes, dtypes, devices and finiteness; name the bad field."""
        n, d = self.pos.shape
        if num_tokens is not None:
            num_tokens = check_int(num_tokens, "num_tokens", 1)
        for name in ("vel", "spin"):
            value = check_pos(getattr(self, name), name)
            if value.shape != (n, d):
                raise ValueError(f"Expected '{name}' of shape {(n, d)} like 'pos' (got {tuple(value.shape)})")
        for name, floating in (("token", False), ("score", True), ("batch", False)):
            value = getattr(self, name)
            if not isinstance(value, Tensor) or value.shape != (n,):
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"Expected '{name}' of shape ({n},), one per particle (got {shape})")
            if floating != value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
                kind = "floating" if floating else "integer"
                raise TypeError(f"Expected '{name}' to be {kind} (got {value.dtype})")
        for name in OPTIONAL:
            value = getattr(self, name)
            if value is None:
                continue
            kind = "torch.bool" if name == "fixed" else "floating"
            if not (isinstance(value, Tensor) and value.shape == (n,)
                    and (value.dtype == torch.bool if name == "fixed" else value.dtype.is_floating_point)):
                got = f"{value.dtype} of shape {tuple(value.shape)}" if isinstance(value, Tensor) else repr(value)
                raise ValueError(f"Expected '{name}' to be None or a {kind} tensor of shape ({n},) (got {got})")
        if self.mass is not None and not bool((self.mass > 0).all() & torch.isfinite(self.mass).all()):
            raise ValueError(f"Expected 'mass' > 0 and finite (got min {float(self.mass.min())})")
        if self.charge is not None and not bool(torch.isfinite(self.charge).all()):
            raise ValueError("Expected 'charge' to be finite (got NaN or inf)")
        if not bool(torch.isfinite(self.score).all()):
            raise ValueError(f"Expected 'score' to be finite (got {int((~torch.isfinite(self.score)).sum())} bad)")
        for name in self.present():
            device = getattr(self, name).device
            if device != self.pos.device:
                raise ValueError(f"Expected '{name}' on {self.pos.device} like 'pos' (got {device})")
            dtype = getattr(self, name).dtype
            if dtype.is_floating_point and dtype != self.pos.dtype:
                raise TypeError(f"Expected '{name}' to have the dtype of 'pos', {self.pos.dtype} (got {dtype}); "
                                f"convert with state.to({self.pos.dtype}) or .to() on the tensor")
        if n and int(self.token.min()) < 0:
            raise ValueError(f"Expected 'token' ids >= 0 (got {int(self.token.min())})")
        if num_tokens is not None and n and int(self.token.max()) >= num_tokens:
            raise ValueError(f"Expected 'token' ids < num_tokens={num_tokens} (got {int(self.token.max())})")
        if n and int(self.batch.min()) < 0:
            raise ValueError(f"Expected 'batch' ids >= 0 (got {int(self.batch.min())})")
        return self

    @property
    def num_particles(self) -> int:
        return self.pos.size(0)

    @property
    def dim(self) -> int:
        return self.pos.size(1)

    def present(self) -> Tuple[str, ...]:
        """Names of the per-particle fields this state carries (optional ones when set)."""
        return FIELDS + tuple(name for name in OPTIONAL if getattr(self, name) is not None)

    def moving(self, pos: Tensor, vel: Tensor) -> Tuple[Tensor, Tensor]:
        """``pos`` and ``vel`` with the fixed particles' rows put back (they never move)."""
        if self.fixed is None:
            return pos, vel
        hold = self.fixed[:, None]
        return torch.where(hold, self.pos, pos), torch.where(hold, self.vel, vel)

    def select(self, index: Tensor, **changes: Tensor) -> ParticleState:
        """Particles ``index`` (e.g. kept copies), every other field gathered along; no re-validation."""
        new = object.__new__(ParticleState)
        new.__dict__.update({name: getattr(self, name).index_select(0, index)
                             for name in self.present() if name not in changes}, **changes)
        new.__dict__.update({name: None for name in OPTIONAL if name not in new.__dict__})
        return new

    def replace(self, **changes: Tensor) -> ParticleState:
        """A new state with some fields swapped (no copy of the others)."""
        return replace(self, **changes)

    def evolve(self, pos: Tensor, vel: Tensor, **others: Tensor) -> ParticleState:
        """The next state from tensors derived from this one: no re-validation (hot path).

        ``pos`` and ``vel`` always change; ``others`` may swap further fields
        (e.g. all of them, when copies are pruned).
        """
        new = object.__new__(ParticleState)
        new.__dict__.update(self.__dict__, pos=pos, vel=vel, **others)
        return new

    def to(self, *args, **kwargs) -> ParticleState:
        moved = {name: getattr(self, name).to(*args, **kwargs) for name in self.present()}
        for name in ("token", "batch", "fixed"):  # integer and bool fields keep their dtype
            if name in moved:
                moved[name] = getattr(self, name).to(moved["pos"].device)
        return ParticleState(**moved)

    def to_data(self) -> Data:
        """One universe as a PyG ``Data`` (all fields node-level)."""
        return Data(**{name: getattr(self, name) for name in self.present() if name != "batch"},
                    num_nodes=self.num_particles)

    @classmethod
    def from_data(cls, data: Data, num_tokens: Optional[int] = None) -> ParticleState:
        """From a ``Data`` or a ``Batch`` of them (its ``batch`` vector is kept)."""
        missing = [k for k in ("pos", "vel", "spin", "token", "score") if getattr(data, k, None) is None]
        if missing:
            raise ValueError(f"Expected Data with {', '.join(missing)} (missing from {data})")
        return cls(data.pos, data.vel, data.spin, data.token, data.score, getattr(data, "batch", None), num_tokens,
                   **{name: getattr(data, name, None) for name in OPTIONAL})

    def __repr__(self) -> str:
        return f"ParticleState(N={self.num_particles}, d={self.dim}, universes={num_universes(self)})"


def num_universes(state: ParticleState) -> int:
    """``B``: one more than the largest batch id (0 for an empty state)."""
    return int(state.batch.max()) + 1 if state.num_particles else 0
