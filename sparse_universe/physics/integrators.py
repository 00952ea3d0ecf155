r"""Time integrators for steps that expose ``acceleration(state)``, e.g. :class:`PairForceStep`.

With :math:`a = a(x, v)` from the step and time step :math:`h`:

* ``"euler"``: explicit (forward) Euler, :math:`x' = x + h v,\ v' = v + h\, a(x, v)`.
  First order, not symplectic: energy drifts steadily.
* ``"semi-implicit"``: the seed's update order, :math:`v' = v + h\, a(x, v),\ x' = x + h v'`
  (symplectic Euler for position-only forces; what ``step(state)`` does).
* ``"verlet"``: velocity Verlet (leapfrog), :math:`v_{1/2} = v + \tfrac h2 a(x),\
  x' = x + h v_{1/2},\ v' = v_{1/2} + \tfrac h2 a(x')`. Second order and
  symplectic for position-only forces; one force evaluation per step (the
  last one is reused).
* ``"rk4"``: classical Runge-Kutta on :math:`(x, v)`, fourth order, four
  evaluations per step, not symplectic.

Integrators are deterministic (a step's variational noise is not applied)
and keep ``fixed`` particles in place.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

from torch import Tensor

from ..state import ParticleState

INTEGRATORS = ("euler", "semi-implicit", "verlet", "rk4")
Acceleration = Callable[[ParticleState], Tensor]


def advance(method: str, accel: Acceleration, state: ParticleState, dt: float,
            cached: Optional[Tensor] = None) -> Tuple[ParticleState, Optional[Tensor]]:
    """One step of ``method``; returns the new state and, for Verlet, its acceleration (to reuse)."""
    x, v = state.pos, state.vel
    if method == "verlet":
        a = accel(state) if cached is None else cached
        half = v + 0.5 * dt * a
        moved = state.evolve(*state.moving(x + dt * half, half))
        a_new = accel(moved)
        return moved.evolve(*moved.moving(moved.pos, half + 0.5 * dt * a_new)), a_new
    if method == "euler":
        return state.evolve(*state.moving(x + dt * v, v + dt * accel(state))), None
    if method == "semi-implicit":
        v_new = v + dt * accel(state)
        return state.evolve(*state.moving(x + dt * v_new, v_new)), None
    if method == "rk4":
        def stage(pos: Tensor, vel: Tensor) -> ParticleState:
            return state.evolve(*state.moving(pos, vel))

        k1x, k1v = v, accel(state)
        s2 = stage(x + 0.5 * dt * k1x, v + 0.5 * dt * k1v)
        k2x, k2v = s2.vel, accel(s2)
        s3 = stage(x + 0.5 * dt * k2x, v + 0.5 * dt * k2v)
        k3x, k3v = s3.vel, accel(s3)
        s4 = stage(x + dt * k3x, v + dt * k3v)
        k4x, k4v = s4.vel, accel(s4)
        pos = x + dt / 6 * (k1x + 2 * k2x + 2 * k3x + k4x)
        vel = v + dt / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
        return state.evolve(*state.moving(pos, vel)), None
    raise ValueError(f"Expected 'integrator' in {INTEGRATORS} (got {method!r})")
