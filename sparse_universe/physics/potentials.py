"""Fixed pair potentials for the known-physics mode: energy u(r) and force -du/dr."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn


class PairPotential(nn.Module):
    """A radial pair potential, zero beyond ``cutoff``; subclasses give :meth:`energy` and :meth:`force`.

    ``qq`` is the product of the pair's charges :math:`q_i q_j` ``(E,)``,
    given to potentials with ``uses_charge`` (and ``None`` to the others).
    """

    cutoff: float
    uses_charge: bool = False

    def energy(self, dist: Tensor, qq: Optional[Tensor] = None) -> Tensor:
        """:math:`u(r)` of each pair ``(E,)`` (pairs beyond the cut-off give 0)."""
        raise NotImplementedError

    def force(self, dist: Tensor, qq: Optional[Tensor] = None) -> Tensor:
        """:math:`-u'(r)` of each pair ``(E,)``: positive pushes the pair apart."""
        raise NotImplementedError


class LennardJones(PairPotential):
    r"""Lennard-Jones, truncated and shifted at ``cutoff``:

    .. math::
        u(r) = 4\varepsilon\big[(\sigma/r)^{12} - (\sigma/r)^6\big] - u_{\mathrm{LJ}}(r_c)
        \quad (r \le r_c), \qquad 0 \text{ beyond.}

    The shift makes the energy continuous at the cut-off (the force keeps its
    small jump there, as in most MD codes). ``cutoff = 2**(1/6) * sigma`` gives
    the purely repulsive WCA potential (:meth:`repulsive`): hard-sphere-like walls.

    Args:
        epsilon (float): well depth. (default: ``1.0``)
        sigma (float): zero crossing. (default: ``1.0``)
        cutoff (float): :math:`r_c`. (default: ``2.5 * sigma``)
    """

    def __init__(self, epsilon: float = 1.0, sigma: float = 1.0, cutoff: float | None = None) -> None:
        super().__init__()
        for name, value in (("epsilon", epsilon), ("sigma", sigma)):
            if not value > 0:
                raise ValueError(f"Expected '{name}' > 0 (got {value})")
        self.epsilon, self.sigma = float(epsilon), float(sigma)
        self.cutoff = 2.5 * self.sigma if cutoff is None else float(cutoff)
        if not self.cutoff > 0:
            raise ValueError(f"Expected 'cutoff' > 0 (got {cutoff})")
        s6 = (self.sigma / self.cutoff) ** 6
        self.shift = 4 * self.epsilon * (s6 * s6 - s6)

    @classmethod
    def repulsive(cls, epsilon: float = 1.0, sigma: float = 1.0) -> LennardJones:
        """The WCA potential: LJ cut and shifted at its minimum, :math:`2^{1/6}\\sigma`."""
        return cls(epsilon, sigma, 2 ** (1 / 6) * sigma)

    def energy(self, dist: Tensor, qq: Optional[Tensor] = None) -> Tensor:
        s6 = (self.sigma / dist) ** 6
        return (4 * self.epsilon * (s6 * s6 - s6) - self.shift) * (dist <= self.cutoff)

    def force(self, dist: Tensor, qq: Optional[Tensor] = None) -> Tensor:
        s6 = (self.sigma / dist) ** 6
        return 24 * self.epsilon * (2 * s6 * s6 - s6) / dist * (dist <= self.cutoff)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, sigma={self.sigma}, cutoff={self.cutoff:.4g}"


class SoftSphere(PairPotential):
    r"""Harmonic soft repulsion, :math:`u(r) = \varepsilon (1 - r/\sigma)^2` for :math:`r < \sigma`, 0 beyond.

    Bounded (:math:`u(0) = \varepsilon`) with a bounded force, the standard
    soft-matter repulsion: walls that reflect anything with kinetic energy
    below their barrier, stable at time steps where Lennard-Jones would need
    many more, and with gradients that stay finite through every bounce.

    Args:
        epsilon (float): energy at contact. (default: ``1.0``)
        sigma (float): range, also the cut-off. (default: ``1.0``)
    """

    def __init__(self, epsilon: float = 1.0, sigma: float = 1.0) -> None:
        super().__init__()
        for name, value in (("epsilon", epsilon), ("sigma", sigma)):
            if not value > 0:
                raise ValueError(f"Expected '{name}' > 0 (got {value})")
        self.epsilon, self.sigma = float(epsilon), float(sigma)
        self.cutoff = self.sigma

    def energy(self, dist: Tensor, qq: Optional[Tensor] = None) -> Tensor:
        return self.epsilon * (1 - dist / self.sigma).clamp_min(0) ** 2

    def force(self, dist: Tensor, qq: Optional[Tensor] = None) -> Tensor:
        return 2 * self.epsilon / self.sigma * (1 - dist / self.sigma).clamp_min(0)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, sigma={self.sigma}"


class Coulomb(PairPotential):
    r"""Softened Coulomb, shifted to zero at the cut-off:

    .. math::
        u(r) = k\, q_i q_j \left(\frac{1}{\sqrt{r^2+\delta^2}} - \frac{1}{\sqrt{r_c^2+\delta^2}}\right)
        \quad (r \le r_c)

    Like charges repel. Needs the state's ``charge``. Truncation makes a
    long-range force local, which is fine for screened or neutral systems and
    for tests of the engine, not for bare long-range electrostatics.

    Args:
        strength (float): :math:`k`. (default: ``1.0``)
        softening (float): :math:`\delta`. (default: ``0.1``)
        cutoff (float): :math:`r_c`. (default: ``3.0``)
    """

    uses_charge = True

    def __init__(self, strength: float = 1.0, softening: float = 0.1, cutoff: float = 3.0) -> None:
        super().__init__()
        if not softening >= 0 or not cutoff > 0:
            raise ValueError(f"Expected 'softening' >= 0 and 'cutoff' > 0 (got {softening}, {cutoff})")
        self.strength, self.softening, self.cutoff = float(strength), float(softening), float(cutoff)
        self.shift = (self.cutoff**2 + self.softening**2) ** -0.5

    def energy(self, dist: Tensor, qq: Optional[Tensor] = None) -> Tensor:
        inv = (dist * dist + self.softening**2).rsqrt()
        return self.strength * _charges(qq) * (inv - self.shift) * (dist <= self.cutoff)

    def force(self, dist: Tensor, qq: Optional[Tensor] = None) -> Tensor:
        inv = (dist * dist + self.softening**2).rsqrt()
        return self.strength * _charges(qq) * dist * inv**3 * (dist <= self.cutoff)

    def extra_repr(self) -> str:
        return f"strength={self.strength}, softening={self.softening}, cutoff={self.cutoff}"


def _charges(qq: Optional[Tensor]) -> Tensor:
    if qq is None:
        raise ValueError("Expected charges: this potential needs a state with 'charge' set")
    return qq


class Harmonic(PairPotential):
    r"""A spring, :math:`u(r) = \frac{k}{2}(r - \ell_0)^2`, for bonds (no cut-off).

    A chain of such springs at spacing :math:`a > \ell_0` is a string of
    tension :math:`T = k (a - \ell_0)`.

    Args:
        stiffness (float): :math:`k`.
        rest_length (float): :math:`\ell_0`. (default: ``0.0``)
    """

    cutoff = math.inf

    def __init__(self, stiffness: float, rest_length: float = 0.0) -> None:
        super().__init__()
        if not stiffness > 0 or not rest_length >= 0:
            raise ValueError(f"Expected 'stiffness' > 0 and 'rest_length' >= 0 (got {stiffness}, {rest_length})")
        self.stiffness, self.rest_length = float(stiffness), float(rest_length)

    def energy(self, dist: Tensor, qq: Optional[Tensor] = None) -> Tensor:
        return 0.5 * self.stiffness * (dist - self.rest_length) ** 2

    def force(self, dist: Tensor, qq: Optional[Tensor] = None) -> Tensor:
        return -self.stiffness * (dist - self.rest_length)

    def extra_repr(self) -> str:
        return f"stiffness={self.stiffness}, rest_length={self.rest_length}"


def chain(n: int, device=None) -> Tensor:
    """Bonds ``(2, n - 1)`` of a chain ``0 - 1 - ... - (n - 1)``."""
    ids = torch.arange(n - 1, device=device)
    return torch.stack([ids, ids + 1])
