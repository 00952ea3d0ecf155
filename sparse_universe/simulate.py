"""``rollout``: run a step module for T steps, differentiably."""

from __future__ import annotations

import warnings
from typing import Callable, List, NamedTuple, Optional

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint
from tqdm.auto import trange

from .branching import BranchManager, WaveState
from .neighbors.checks import check_choice, check_int
from .physics.integrators import INTEGRATORS, advance
from .state import ParticleState

Step = Callable[[ParticleState], ParticleState]
HORIZON = ("warn", "raise", None)


class Trajectory(NamedTuple):
    pos: Tensor  # (T + 1, N, d): the initial positions, then one row per step (measured, for waves)
    vel: Tensor  # (T + 1, N, d) (waves: measured displacement / dt)
    final: ParticleState  # the last state (waves: the last copies)
    waves: Optional[List[WaveState]] = None  # wave mode: the copies after every step


def rollout(step: Step, state: ParticleState, steps: int, *, progress: bool = False,
            checkpoint: bool = False, integrator: Optional[str] = None, horizon: Optional[str] = "warn") -> Trajectory:
    r"""Apply ``step`` ``steps`` times; gradients flow through every step.

    The step rebuilds its collision graph from the current positions at every
    call (inject a :class:`~sparse_universe.NeighborList` into the step to
    reuse a Verlet list instead).

    With a :class:`~sparse_universe.branching.BranchManager` as ``step`` the
    rollout runs in wave mode: particles spread into copies, ``pos`` holds the
    measured positions, and ``waves`` the copies after every step.

    Args:
        step: a module mapping a :class:`ParticleState` to the next, e.g.
            :class:`~sparse_universe.nn.UniverseStep`, or a ``BranchManager``.
        state: the initial state, or a
            :class:`~sparse_universe.distributed.DistributedState` (one universe over
            many processes; then a :class:`~sparse_universe.distributed.DistributedTrajectory`
            is returned).
        steps (int): number of steps ``T >= 0``.
        progress (bool): show a tqdm bar. (default: ``False``)
        checkpoint (bool): recompute each step in the backward pass instead of
            storing its activations: memory O(T N d) instead of O(T E hidden),
            at about one extra forward. The random draws are replayed, so
            gradients are unchanged. (default: ``False``)
        integrator (str, optional): ``"euler"``, ``"semi-implicit"``, ``"verlet"``
            or ``"rk4"`` (see :mod:`sparse_universe.physics.integrators`), for
            steps with ``acceleration(state)`` and ``dt`` such as
            :class:`~sparse_universe.physics.PairForceStep`; ``None`` calls
            ``step(state)``. (default: ``None``)
        horizon (str, optional): the collision-horizon (CFL) check of seed 002.
            If :math:`\max_i \lVert v_i \rVert \Delta t` exceeds the step's
            collision distance ``eps``, a particle can pass through a collision
            partner without ever being within ``eps`` of it. ``"warn"`` warns
            once per rollout, ``"raise"`` raises :class:`CollisionHorizonError`,
            ``None`` skips the check (one device sync per step). (default: ``"warn"``)

    Shapes:
        -> pos ``(T + 1, N, d)``, vel ``(T + 1, N, d)``.
    """
    distributed = type(state).__name__ == "DistributedState"
    if not (distributed or isinstance(state, ParticleState)):
        raise TypeError(f"Expected 'state' to be a ParticleState (got {type(state).__name__}); build one with "
                        f"ParticleState(pos, vel, ...) or ParticleState.from_data(data)")
    steps = check_int(steps, "steps", 0)
    check_choice(horizon, "horizon", HORIZON)
    check = _HorizonCheck(step, horizon)
    if isinstance(step, BranchManager) and integrator is not None:
        raise ValueError("Expected 'integrator=None' in wave mode (the branch manager samples velocities)")
    if isinstance(step, BranchManager) and not distributed:
        return _wave_rollout(step, WaveState.from_particles(state), steps, progress, check)
    if integrator is not None:
        if integrator not in INTEGRATORS:
            raise ValueError(f"Expected 'integrator' in {INTEGRATORS} (got {integrator!r})")
        if not hasattr(step, "acceleration"):
            raise TypeError(f"Expected a step with 'acceleration(state)' for integrator={integrator!r} "
                            f"(got {type(step).__name__})")
    if distributed:
        if checkpoint:
            raise ValueError("Expected checkpoint=False on a DistributedState (not distributed yet)")
        from .distributed.rollout import rollout as distributed_rollout

        return distributed_rollout(step, state, steps, check, progress=progress, integrator=integrator)
    positions, velocities = [state.pos], [state.vel]
    cached = None
    for _ in trange(steps, desc="rollout", disable=not progress, leave=False):
        check(state)
        if integrator is not None:
            state, cached = advance(integrator, step.acceleration, state, step.dt, cached)
        elif checkpoint and torch.is_grad_enabled():
            pos, vel = _checkpoint(_advance, step, state, state.pos, state.vel, use_reentrant=False)
            state = state.evolve(pos, vel)
        else:
            state = step(state)
        positions.append(state.pos)
        velocities.append(state.vel)
    return Trajectory(torch.stack(positions), torch.stack(velocities), state)


class CollisionHorizonError(RuntimeError):
    """A particle moves farther than the collision distance in one step."""


class _HorizonCheck:
    r"""Seed 002's CFL condition, :math:`\max \lVert v \rVert \Delta t \le \epsilon`."""

    def __init__(self, step: Step, mode: Optional[str]) -> None:
        inner = step.step if isinstance(step, BranchManager) else step
        self.eps, self.dt = getattr(inner, "eps", None), getattr(inner, "dt", None)
        self.mode = mode if self.eps is not None and self.dt is not None else None
        self.warned = False

    def __call__(self, state: ParticleState, speed: Optional[float] = None) -> None:
        """Check ``state``'s largest speed (or ``speed``, e.g. the largest over all ranks)."""
        if self.mode is None or self.warned or (speed is None and state.num_particles == 0):
            return
        speed = float(state.vel.detach().norm(dim=-1).max()) if speed is None else speed
        if speed * self.dt <= self.eps:
            return
        message = (f"Collision horizon exceeded: max |v| * dt = {speed * self.dt:.4g} > eps = {self.eps:.4g} "
                   f"(max |v| = {speed:.4g}, dt = {self.dt:.4g}); particles can pass through each other "
                   f"between steps. Lower dt or speeds, or raise eps.")
        if self.mode == "raise":
            raise CollisionHorizonError(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        self.warned = True


def _advance(step: Step, state: ParticleState, pos: Tensor, vel: Tensor):
    nxt = step(state.evolve(pos, vel))
    return nxt.pos, nxt.vel


def _wave_rollout(manager: BranchManager, wave: WaveState, steps: int, progress: bool,
                  check: _HorizonCheck) -> Trajectory:
    positions, velocities, waves = [wave.copies.pos], [wave.copies.vel], []
    for _ in trange(steps, desc="rollout (waves)", disable=not progress, leave=False):
        check(wave.copies)
        wave, measured = manager(wave)
        velocities.append((measured - positions[-1]) / manager.step.dt)
        positions.append(measured)
        waves.append(wave)
    return Trajectory(torch.stack(positions), torch.stack(velocities), wave.copies, waves)
