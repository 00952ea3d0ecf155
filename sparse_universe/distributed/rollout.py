"""Rollouts, losses and gradients on a :class:`DistributedState`, with the single-process API."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, List, NamedTuple, Optional, Union

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import trange

from ..branching import BranchManager, WaveState
from ..losses import _check, _log_normal, _reduce, select_members
from ..physics.integrators import advance
from ..simulate import Trajectory, _HorizonCheck
from ..state import ParticleState
from .comm import Group, all_gather_rows, all_max, all_sum
from .state import DistributedState, HaloTooThin

Step = Callable[..., ParticleState]


class OwnedRows(NamedTuple):
    """One per-particle quantity along a decomposed rollout: this rank's owned rows after every step.

    Owned sets change when particles migrate, so each step keeps its rows'
    global ids. Indexing gives a step's rows; :meth:`gather` the whole
    ``(T + 1, N, d)`` tensor; :func:`~sparse_universe.path_loss` takes it as
    it takes that tensor.
    """

    rows: List[Tensor]  # T + 1 tensors (n_t, d)
    gid: List[Tensor]  # (n_t,) their global ids
    num_particles: int
    group: Group

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, step: int) -> Tensor:
        return self.rows[step]

    def gather(self) -> Tensor:
        """``(T + 1, N, d)`` on every rank, rows by global id (differentiable; O(T N d) memory per rank)."""
        out = []
        for rows, gid in zip(self.rows, self.gid):
            order = torch.argsort(all_gather_rows(gid, self.group))
            out.append(all_gather_rows(rows, self.group).index_select(0, order))
        return torch.stack(out)

    def path_loss(self, path: Tensor, members: Union[Tensor, int], sigma: float = 1.0, *,
                  token: Optional[Tensor] = None, reading: str = "density", reduction: str = "mean") -> Tensor:
        """:func:`~sparse_universe.path_loss` from each rank's partial sums (members by global id).

        Every rank gets the same loss value; back-propagating it on every
        rank gives each rank the gradient of its own particles (see
        :mod:`~sparse_universe.distributed.comm`). One collective for the
        whole trajectory.
        """
        _check(reading, reduction, sigma)
        steps = path.size(0) if path.dim() == 2 else -1
        if path.dim() != 2 or len(self) not in (steps, steps + 1) or path.size(1) != self.rows[0].size(1):
            raise ValueError(f"Expected path (T, d) for {len(self)} or {len(self) - 1} rows of positions in "
                             f"d={self.rows[0].size(1)} (got {tuple(path.shape)})")
        is_member = torch.zeros(self.num_particles, dtype=torch.bool, device=path.device)
        is_member[select_members(members, self.num_particles, token)] = True
        count = int(is_member.sum())
        rows = zip(self.rows[-steps:], self.gid[-steps:], path)
        log_n = [_log_normal(x[is_member.index_select(0, gid)], target, sigma) for x, gid, target in rows]
        if reading == "density":
            local = torch.stack([torch.logsumexp(x, 0) for x in log_n])  # -inf on a rank without members
            per_step = -(torch.logsumexp(all_gather_rows(local[None], self.group), 0) - math.log(count))
        else:
            per_step = -all_sum(torch.stack([x.sum() for x in log_n]), self.group) / count
        return _reduce(per_step, reduction)


class OwnedWaves(list):
    """A decomposed wave rollout's copies after every step: on each rank a list of
    :class:`~sparse_universe.WaveState` of the particles it owned then (``particle``: global ids), which
    :func:`~sparse_universe.wave_path_loss` takes as it takes ``Trajectory.waves``."""

    def __init__(self, waves: List[WaveState], group: Group) -> None:
        super().__init__(waves)
        self.group = group

    def combine(self, terms: Tensor, reading: str) -> Tensor:
        """The ranks' per-step terms of :func:`~sparse_universe.losses.wave_terms` together (replicated)."""
        if reading == "density":
            return torch.logsumexp(all_gather_rows(terms[None], self.group), 0)
        return all_sum(terms, self.group)


class DistributedTrajectory(NamedTuple):
    """A rollout on a decomposed universe: positions and velocities as :class:`OwnedRows`, the final state
    and, in wave mode, the copies after every step."""

    pos: OwnedRows
    vel: OwnedRows
    final: DistributedState
    waves: Optional[OwnedWaves] = None

    def gather(self) -> Trajectory:
        """The single-process :class:`~sparse_universe.Trajectory` on every rank (for checks and small N)."""
        return Trajectory(self.pos.gather(), self.vel.gather(), self.final.gather())


def rollout(step: Step, state: DistributedState, steps: int, check: _HorizonCheck, *, progress: bool = False,
            integrator: Optional[str] = None) -> DistributedTrajectory:
    r""":func:`~sparse_universe.rollout` on a decomposed universe (called by it, after its argument checks).

    Each rank evaluates the step on its owned particles and ghosts, keeping
    the owned rows. Before every step one all-reduce decides whether a
    particle moved more than half the skin since the last rebuild (with an
    integrator, plus the previous step's largest move, because forces are
    evaluated at the new positions too; each such evaluation is checked and
    raises :class:`HaloTooThin` rather than miss a pair). The step must be one
    of the library's steps or follow their protocol: a ``search_radius``, a
    ``graph(pos, batch)`` and ``forward(state, edge_index)``; or a
    :class:`~sparse_universe.BranchManager` over one (wave mode, see
    :func:`_wave_rollout`).
    """
    if isinstance(step, BranchManager):
        return _wave_rollout(step, state, steps, check, progress)
    reach = _reach(step, state)
    pos, vel, gid = [state.state.pos], [state.state.vel], [state.gid]
    cached = None
    for _ in trange(steps, desc="rollout", disable=not progress or state.rank != 0, leave=False):
        fresh = state.ensure(reach, lookahead=integrator is not None)
        if fresh is not state:
            cached = None  # the owned rows changed order
        state = fresh
        # "raise" must stop every rank together: the largest speed over ranks; a warning may come from any rank
        check(state.state, _global_speed(state) if check.mode == "raise" else None)
        local = _Local(step, state, reach)
        if integrator is None:
            owned, travel = local(state.state), 0.0
        else:
            owned, cached = advance(integrator, local.acceleration, state.state, step.dt, cached)
            moved = (owned.pos.detach() - state.state.pos.detach()).norm(dim=1)
            travel = float(moved.max()) if moved.numel() else 0.0
        state = state.evolve(owned, travel)
        pos.append(owned.pos)
        vel.append(owned.vel)
        gid.append(state.gid)
    rows = lambda values: OwnedRows(values, gid, state.num_particles, state.group)  # noqa: E731
    return DistributedTrajectory(rows(pos), rows(vel), state)


def _wave_rollout(manager: BranchManager, state: DistributedState, steps: int, check: _HorizonCheck,
                  progress: bool) -> DistributedTrajectory:
    """Wave mode: the rows are copies, their global id their particle's; a particle's copies live together.

    Every copy lives on the rank owning its particle's last measured position
    (its anchor), so pruning and the measurement stay on one rank. Copies
    change every step, so each step rebuilds the send lists, with the halo
    widened by the farthest an owned copy lies outside its rank's brick, and
    migrates the kept copies to their new anchor's owner. Each rank runs the
    branch manager on its copies and ghost copies and keeps its own
    particles' results. ``vel`` rows are the measured displacement over
    ``dt``, as in one process; ``waves`` holds each rank's kept copies.
    """
    reach = _reach(manager.step, state)
    state = state.evolve(state.state.replace(score=torch.ones_like(state.state.score)))  # WaveState.from_particles
    anchor = state.state.pos  # each copy's particle's measured position
    pos, vel, gid, waves = [state.state.pos], [state.state.vel], [state.gid], []
    for _ in trange(steps, desc="rollout (waves)", disable=not progress or state.rank != 0, leave=False):
        check(state.state, _global_speed(state) if check.mode == "raise" else None)
        outside = state.domain.distance(state.state.pos, state.rank)
        widen = all_max([float(outside.max()) if outside.numel() else 0.0], outside.device, state.group)[0]
        state = state.rebuild(reach + widen)
        local = state.local()
        ids, particle = torch.unique(torch.cat([state.gid, state.halo.ints[:, 2]]), return_inverse=True)
        n = state.state.num_particles
        edges = manager.graph(local, particle)
        wave, measured = manager(WaveState(local, particle, ids.numel()), edges[:, edges[1] < n])
        mine = torch.isin(ids, state.gid)  # this rank's particles, by local id (sorted by global id)
        rows = mine.index_select(0, wave.particle).nonzero().view(-1)  # their kept copies
        kept = wave.particle.index_select(0, rows)
        first = torch.ones(n, dtype=torch.bool, device=state.gid.device)
        first[1:] = state.gid[1:] != state.gid[:-1]  # one row per particle, by global id
        now = measured[mine]
        pos.append(now)
        vel.append((now - anchor[first]) / manager.step.dt)
        gid.append(ids[mine])
        moved = replace(state, state=wave.copies.select(rows), gid=ids.index_select(0, kept))
        waves.append(WaveState(moved.state, moved.gid, state.num_particles))
        state, anchor = moved.migrate(state.domain.owner(measured.index_select(0, kept)),
                                      carry=measured.index_select(0, kept))
    rows_of = lambda values: OwnedRows(values, gid, state.num_particles, state.group)  # noqa: E731
    return DistributedTrajectory(rows_of(pos), rows_of(vel), state, OwnedWaves(waves, state.group))


def sum_pairs(state: DistributedState, step: nn.Module,
              per_universe: Callable[[ParticleState, Tensor], Tensor]) -> Tensor:
    """``per_universe(local, edge_index)`` over the pairs with an owned target, summed over ranks ``(B, ...)``.

    For pair observables such as :meth:`PairForceStep.potential_energy`
    (each pair across two ranks is counted half on each, as in one process).
    """
    reach = _reach(step, state)
    state = state.ensure(reach)
    owned = _Local(step, state, reach)
    return state.evolve(state.local()).sum_over_ranks(lambda local: per_universe(local, owned.graph(local)))


def reduce_gradients(module: nn.Module, spatial: Group = None, data: Optional[Group] = None) -> None:
    """Sum parameter gradients over the ranks of one universe, then average them over data-parallel replicas.

    Call after ``loss.backward()`` on every rank. ``spatial`` holds the
    ranks of one decomposed universe (each contributed the gradient through
    its own particles); ``data`` the replicas that each saw other universes
    (``None``: no data parallelism). One flat all-reduce per group.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat, group=spatial)
    if data is not None:
        dist.all_reduce(flat, group=data)
        flat /= dist.get_world_size(data)
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad = g.view_as(p).clone()


class _Local:
    """The step on this rank's owned particles and ghosts, returning the owned rows."""

    def __init__(self, step: Step, state: DistributedState, reach: float) -> None:
        self.step, self.state, self.reach = step, state, reach
        self.n = state.state.num_particles

    def graph(self, local: ParticleState) -> Tensor:
        edges = self.step.graph(local.pos, local.batch)
        return edges[:, edges[1] < self.n]

    def __call__(self, owned: ParticleState) -> ParticleState:
        local = self.state.local(owned)
        return self.step(local, edge_index=self.graph(local)).select(torch.arange(self.n, device=local.pos.device))

    def acceleration(self, owned: ParticleState) -> Tensor:
        if owned.pos is not self.state.state.pos:  # an integrator's stage: check the halo still covers it
            far = self.state.evolve(owned).moved()[0]
            if self.state.halo.width < self.reach + 2 * far:
                raise HaloTooThin(f"A particle moved {far:.4g} since the last rebuild, more than half the skin "
                                  f"({self.state.skin:.4g}) allows within one step; raise the skin or lower dt")
        local = self.state.local(owned)
        return self.step.acceleration(local, self.graph(local))[: self.n]


def _reach(step: Step, state: DistributedState) -> float:
    """The step's search radius, after checking it can run decomposed with this state's box."""
    if not isinstance(state, DistributedState):
        raise TypeError(f"Expected a DistributedState (got {type(state).__name__})")
    reach = getattr(step, "search_radius", None)
    if reach is None or not hasattr(step, "graph"):
        raise TypeError(f"Expected a step with 'search_radius' and 'graph(pos, batch)' to run distributed, such as "
                        f"UniverseStep or PairForceStep (got {type(step).__name__})")
    layer = getattr(step, "collide", step)
    if getattr(layer, "neighbor_search", None) is not None:
        raise ValueError("Expected 'neighbor_search=None' on a distributed step: each rank builds its graph "
                         "from its own particles and ghosts (the halo's skin plays the Verlet list's part)")
    if getattr(step, "momentum_conserving", False) and step.training and step.sigma > 0:
        raise ValueError("Expected sigma=0 or eval mode for a momentum-conserving step run distributed: its noise "
                         "is centred per universe, over all ranks' particles (not distributed yet)")
    if getattr(step, "bonds", None) is not None:
        raise ValueError("Expected a step without 'bonds' to run distributed: bonds index the particles of one "
                         "process (not distributed yet)")
    box = layer.box
    domain = state.domain
    periods = [float(domain.hi[k] - domain.lo[k]) if domain.periodic[k] else math.inf for k in range(domain.dim)]
    given = None if box is None else torch.as_tensor(box, dtype=torch.float64)
    if given is not None and layer.periodic is not None:
        given = torch.where(torch.as_tensor(layer.periodic), given, torch.full_like(given, math.inf))
    if (given is None and any(domain.periodic)) or (given is not None and given.tolist() != periods):
        raise ValueError(f"Expected the step's periodic box to match the DistributedState's (periods {periods}; "
                         f"got box={box}, periodic={layer.periodic}): pass the same box and periodic to scatter()")
    return float(reach)


def _global_speed(state: DistributedState) -> float:
    vel = state.state.vel.detach()
    local = float(vel.norm(dim=1).max()) if vel.size(0) else 0.0
    return all_max([local], vel.device, state.group)[0]
