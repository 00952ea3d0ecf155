"""``rollout``: run a step module for T steps, differentiably."""

from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint
from tqdm.auto import trange

from .branching import BranchManager, WaveState
from .state import ParticleState

Step = Callable[[ParticleState], ParticleState]


class Trajectory(NamedTuple):
    pos: Tensor  # (T + 1, N, d): the initial positions, then one row per step (measured, for waves)
    vel: Tensor  # (T + 1, N, d) (waves: measured displacement / dt)
    final: ParticleState  # the last state (waves: the last copies)
    waves: Optional[List[WaveState]] = None  # wave mode: the copies after every step


def rollout(step: Step, state: ParticleState, steps: int, *, progress: bool = False,
            checkpoint: bool = False) -> Trajectory:
    """Apply ``step`` ``steps`` times; gradients flow through every step.

    The step rebuilds its collision graph from the current positions at every
    call (inject a :class:`~sparse_universe.NeighborList` into the step to
    reuse a Verlet list instead).

    With a :class:`~sparse_universe.branching.BranchManager` as ``step`` the
    rollout runs in wave mode: particles spread into copies, ``pos`` holds the
    measured positions, and ``waves`` the copies after every step.

    Args:
        step: a module mapping a :class:`ParticleState` to the next, e.g.
            :class:`~sparse_universe.nn.UniverseStep`, or a ``BranchManager``.
        state: the initial state.
        steps (int): number of steps ``T >= 0``.
        progress (bool): show a tqdm bar. (default: ``False``)
        checkpoint (bool): recompute each step in the backward pass instead of
            storing its activations: memory O(T N d) instead of O(T E hidden),
            at about one extra forward. The random draws are replayed, so
            gradients are unchanged. (default: ``False``)

    Shapes:
        -> pos ``(T + 1, N, d)``, vel ``(T + 1, N, d)``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"Expected 'steps' to be an int >= 0 (got {steps!r})")
    if isinstance(step, BranchManager):
        return _wave_rollout(step, WaveState.from_particles(state), steps, progress)
    positions, velocities = [state.pos], [state.vel]
    for _ in trange(steps, desc="rollout", disable=not progress, leave=False):
        if checkpoint and torch.is_grad_enabled():
            pos, vel = _checkpoint(_advance, step, state, state.pos, state.vel, use_reentrant=False)
            state = state.evolve(pos, vel)
        else:
            state = step(state)
        positions.append(state.pos)
        velocities.append(state.vel)
    return Trajectory(torch.stack(positions), torch.stack(velocities), state)


def _advance(step: Step, state: ParticleState, pos: Tensor, vel: Tensor):
    nxt = step(state.evolve(pos, vel))
    return nxt.pos, nxt.vel


def _wave_rollout(manager: BranchManager, wave: WaveState, steps: int, progress: bool) -> Trajectory:
    positions, velocities, waves = [wave.copies.pos], [wave.copies.vel], []
    for _ in trange(steps, desc="rollout (waves)", disable=not progress, leave=False):
        wave, measured = manager(wave)
        velocities.append((measured - positions[-1]) / manager.step.dt)
        positions.append(measured)
        waves.append(wave)
    return Trajectory(torch.stack(positions), torch.stack(velocities), wave.copies, waves)
