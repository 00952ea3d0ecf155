"""``DistributedState``: one universe decomposed over the ranks of a process group."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from ..neighbors.checks import check_box, check_real
from ..state import ParticleState, num_universes
from ..typing import PerAxis
from .comm import Group, all_gather_rows, all_max, all_sum, charged, counts, exchange
from .domain import Domain, choose_grid

#: The floating fields exchanged with ghosts and migrants (the optional ones when present).
FLOATING = ("pos", "vel", "spin", "score", "mass", "charge")


@dataclass(frozen=True)
class Halo:
    """Who gets which ghost: built at a rebuild, used by every exchange until the next one."""

    width: float  # ghosts are every particle within this distance of the brick, at the rebuild
    index: Tensor  # owned rows sent, grouped by destination rank
    send: List[int]  # rows sent to each rank
    recv: List[int]  # ghost rows received from each rank
    ints: Tensor  # (G, k) the ghosts' integer fields: token, batch, global id[, fixed]


class HaloTooThin(RuntimeError):
    """A particle moved farther than the skin allows between two rebuilds of the halo."""


@dataclass(frozen=True)
class DistributedState:
    r"""The particles this rank owns, their global ids, and how ranks share the box.

    A spatial decomposition in the LAMMPS style, on ``torch.distributed``:
    each rank owns the particles in its brick of a grid of ranks
    (:class:`~sparse_universe.distributed.Domain`) with their whole state, and
    receives *ghosts*, copies of the other ranks' particles within the halo
    width of its brick: the step's search radius plus ``skin``. Ghosts come
    through one differentiable exchange per force evaluation, with send lists
    fixed between rebuilds. A rebuild (migration of particles that left their
    brick to their new owner, then new send lists) happens when some particle
    has moved more than half the skin since the last one, decided by an
    all-reduce so that every rank agrees. Owned particles are kept sorted by
    global id.

    Build one from a whole universe (every rank passes the same state) with
    :meth:`scatter`, or from parts that each rank made with :meth:`from_parts`;
    then call the single-process API on it: :func:`~sparse_universe.rollout`,
    the observables, :func:`~sparse_universe.path_loss`. Positions are kept
    unwrapped, as in one process; the layers see each rank's owned particles
    and ghosts as an ordinary :class:`~sparse_universe.ParticleState` with the
    step's own ``box``, and compute only the owned particles' updates (newton
    off: a pair across two ranks is evaluated on both).

    Attributes:
        state: the owned particles, a :class:`~sparse_universe.ParticleState`.
        gid: ``(n,)`` their global ids (rows of the scattered state).
        domain: the grid of bricks.
        skin: extra halo width, so that rebuilds are needed only every few steps.
        group: the process group (``None``: the default one).
        ref: positions at the last rebuild (detached).
        halo: the send lists of the last rebuild (``None`` before the first).
        num_particles, num_universes: global counts.
        travel: this rank's largest move in the last step of an integrator (the next
            step's look-ahead, so that consecutive rollouts continue seamlessly).
        rebuilds: how many times the halo was built.
    """

    state: ParticleState
    gid: Tensor
    domain: Domain
    skin: float
    group: Group
    ref: Tensor
    halo: Optional[Halo]
    num_particles: int
    num_universes: int
    travel: float = 0.0
    rebuilds: int = 0

    @classmethod
    def scatter(cls, state: ParticleState, grid: Optional[Sequence[int]] = None, *, box: Optional[PerAxis] = None,
                periodic: Optional[PerAxis] = None, skin: float = 0.0, group: Group = None) -> DistributedState:
        """This rank's part of ``state``, which every rank passes whole (global id = row).

        Args:
            state: the universe (one or many, by its ``batch``), identical on every rank.
            grid (sequence of int, optional): ranks per axis, product = the group's
                size; chosen by :func:`choose_grid` when omitted.
            box, periodic: the periodic box, as given to the step (orthorhombic only).
            skin (float): extra halo width. (default: ``0.0``, a rebuild every step)
            group: the process group. (default: ``None``, the default group)
        """
        if not isinstance(state, ParticleState):
            raise TypeError(f"Expected 'state' to be a ParticleState (got {type(state).__name__})")
        domain = _domain(state.pos, grid, box, periodic, group, local=False)
        mine = (domain.owner(state.pos) == dist.get_rank(group)).nonzero().view(-1)
        return cls(state.select(mine), mine, domain, check_real(skin, "skin", 0.0), group,
                   state.pos.detach().index_select(0, mine), None, state.num_particles, num_universes(state))

    @classmethod
    def from_parts(cls, state: ParticleState, gid: Tensor, grid: Optional[Sequence[int]] = None, *,
                   box: Optional[PerAxis] = None, periodic: Optional[PerAxis] = None, skin: float = 0.0,
                   group: Group = None) -> DistributedState:
        """Assemble a universe from a part on each rank (any particles; ``gid`` unique over ranks), then migrate.

        For universes too big to build in one process: each rank makes some
        particles, and they travel to their owners here.
        """
        if not isinstance(gid, Tensor) or gid.shape != (state.num_particles,) or gid.dtype != torch.long:
            got = f"{gid.dtype} of shape {tuple(gid.shape)}" if isinstance(gid, Tensor) else type(gid).__name__
            raise ValueError(f"Expected 'gid' int64 of shape ({state.num_particles},), one per particle (got {got})")
        domain = _domain(state.pos, grid, box, periodic, group, local=True)
        total = torch.tensor([state.num_particles], device=state.pos.device)
        dist.all_reduce(total, group=group)
        universes = int(all_max([num_universes(state)], state.pos.device, group)[0])
        return cls(state, gid, domain, check_real(skin, "skin", 0.0), group, state.pos.detach(), None,
                   int(total), universes).migrate()

    @property
    def rank(self) -> int:
        return dist.get_rank(self.group)

    def evolve(self, state: ParticleState, travel: float = 0.0) -> DistributedState:
        """The same particles with new values (e.g. after a step that moved them up to ``travel``)."""
        return replace(self, state=state, travel=travel)

    # --- communication -------------------------------------------------------------------------------------

    def migrate(self, dest: Optional[Tensor] = None, carry: Optional[Tensor] = None):
        """Send every particle to the rank whose brick holds it, or to ``dest`` (a rank per row); the halo
        must then be rebuilt. Differentiable; rows stay sorted by global id (stable).

        ``carry`` ``(n, k)`` travels along with the rows; with it, returns ``(state, carried)``.
        """
        dest = self.domain.owner(self.state.pos) if dest is None else dest
        order = torch.argsort(dest, stable=True)
        send = torch.bincount(dest, minlength=self.domain.size)
        recv = counts(send, self.group)
        send_list = send.tolist()
        floats = _floats(self.state) if carry is None else torch.cat([_floats(self.state), carry], 1)
        floats = exchange(floats.index_select(0, order), send_list, recv, self.group)
        ints = exchange(_ints(self.state, self.gid).index_select(0, order), send_list, recv, self.group)
        order = torch.argsort(ints[:, 2], stable=True)
        floats, ints = floats.index_select(0, order), ints.index_select(0, order)
        state = _unpack(self.state, floats, ints)
        moved = replace(self, state=state, gid=ints[:, 2], ref=state.pos.detach(), halo=None)
        return moved if carry is None else (moved, floats[:, floats.size(1) - carry.size(1):])

    def rebuild(self, width: float) -> DistributedState:
        """Send lists for ghosts within ``width`` of each brick (particles must be in their bricks)."""
        index, dest = self.domain.halo(self.state.pos, width, self.rank)
        send = torch.bincount(dest, minlength=self.domain.size)
        recv = counts(send, self.group)
        ints = exchange(_ints(self.state, self.gid).index_select(0, index), send.tolist(), recv, self.group)
        return replace(self, halo=Halo(width, index, send.tolist(), recv, ints), rebuilds=self.rebuilds + 1)

    def ensure(self, reach: float, lookahead: bool = False) -> DistributedState:
        """A state whose halo holds every pair within ``reach`` of the owned particles (with ``lookahead``,
        also after every particle moves as far again as in the last step, :attr:`travel`): migrate and
        rebuild if a particle moved too far since the last rebuild. One all-reduce."""
        moved, lookahead = self.moved(self.travel if lookahead else 0.0)
        if self.halo is not None and self.halo.width >= reach + 2 * (moved + lookahead):
            return self
        if self.skin < 2 * lookahead:  # not even a fresh halo would do
            raise HaloTooThin(f"Expected 'skin' >= {2 * lookahead:.4g}, twice the distance a particle moves in one "
                              f"step (got skin={self.skin:.4g}); raise the skin or lower dt")
        with charged("migration"):  # its communication included
            return self.migrate().rebuild(reach + self.skin)

    def moved(self, *others: float) -> List[float]:
        """The largest distance a particle moved since the last rebuild, then ``others``, each the largest over
        all ranks (one all-reduce)."""
        local = float((self.state.pos.detach() - self.ref).norm(dim=1).max()) if self.state.num_particles else 0.0
        return all_max([local, *others], self.state.pos.device, self.group)

    def local(self, owned: Optional[ParticleState] = None) -> ParticleState:
        """The owned particles (``owned``, default :attr:`state`) then the ghosts, as one state.

        The ghosts' floating fields come through one differentiable exchange
        of ``owned``'s current values along the halo's send lists.
        """
        owned = self.state if owned is None else owned
        if self.halo is None:
            raise RuntimeError("Expected a halo: call ensure(reach) (rollout does) before local()")
        floats = _floats(owned)
        ghosts = exchange(floats.index_select(0, self.halo.index), self.halo.send, self.halo.recv, self.group)
        return _unpack(owned, torch.cat([floats, ghosts]),
                       torch.cat([_ints(owned, self.gid), self.halo.ints]))

    # --- reductions ----------------------------------------------------------------------------------------

    def sum_over_ranks(self, per_universe: Callable[[ParticleState], Tensor]) -> Tensor:
        """``per_universe(owned)`` summed over ranks, ``(B, ...)`` on every rank (differentiable)."""
        value = per_universe(self.state)
        missing = self.num_universes - value.size(0)
        if missing:
            value = torch.cat([value, value.new_zeros((missing,) + tuple(value.shape[1:]))])
        return all_sum(value, self.group)

    def gather(self) -> ParticleState:
        """The whole universe on every rank, ordered by global id.

        Differentiable (each rank's gradient reaches its own rows); memory
        O(N) per rank, so for checks and small universes.
        """
        floats = all_gather_rows(_floats(self.state), self.group)
        ints = all_gather_rows(_ints(self.state, self.gid), self.group)
        order = torch.argsort(ints[:, 2])
        return _unpack(self.state, floats.index_select(0, order), ints.index_select(0, order))

    def __repr__(self) -> str:
        return (f"DistributedState(rank={self.rank}/{self.domain.size}, grid={self.domain.grid}, "
                f"owned={self.state.num_particles}, N={self.num_particles})")


def _domain(pos: Tensor, grid: Optional[Sequence[int]], box: Optional[PerAxis], periodic: Optional[PerAxis],
            group: Group, local: bool) -> Domain:
    """The grid over the box (periodic axes) and the particles' extent (open axes; all-reduced if ``local``)."""
    size, d = dist.get_world_size(group), pos.size(1)
    periods = check_box(box, periodic, pos)
    per = [False] * d if periods is None else torch.isfinite(periods).tolist()
    x = pos.detach().to(torch.float64)
    low = x.amin(0) if x.size(0) else torch.full((d,), torch.inf, dtype=torch.float64, device=pos.device)
    high = x.amax(0) if x.size(0) else torch.full((d,), -torch.inf, dtype=torch.float64, device=pos.device)
    if local:
        extent = torch.cat([-low, high])
        dist.all_reduce(extent, op=dist.ReduceOp.MAX, group=group)
        low, high = -extent[:d], extent[d:]
    lo = [0.0 if per[k] else float(low[k]) for k in range(d)]
    hi = [float(periods[k]) if per[k] else max(float(high[k]), lo[k] + 1e-12) for k in range(d)]
    if grid is None:
        grid = choose_grid(size, [h - lo_k for h, lo_k in zip(hi, lo)])
    grid = tuple(int(g) for g in grid)
    if len(grid) != d or any(g < 1 for g in grid) or torch.tensor(grid).prod().item() != size:
        raise ValueError(f"Expected 'grid' of {d} positive ints whose product is the group's size {size} "
                         f"(got {grid})")
    return Domain(grid, tuple(lo), tuple(hi), tuple(per))


def _floats(state: ParticleState) -> Tensor:
    cols = [state.pos, state.vel, state.spin, state.score[:, None]]
    cols += [getattr(state, name)[:, None] for name in FLOATING[4:] if getattr(state, name) is not None]
    return torch.cat(cols, 1)


def _ints(state: ParticleState, gid: Tensor) -> Tensor:
    cols = [state.token, state.batch, gid] + ([state.fixed.long()] if state.fixed is not None else [])
    return torch.stack(cols, 1)


def _unpack(template: ParticleState, floats: Tensor, ints: Tensor) -> ParticleState:
    """A state with ``template``'s fields from packed columns (no re-validation)."""
    d = template.dim
    fields = dict(pos=floats[:, :d], vel=floats[:, d:2 * d], spin=floats[:, 2 * d:3 * d], score=floats[:, 3 * d],
                  token=ints[:, 0], batch=ints[:, 1])
    col = 3 * d + 1
    for name in FLOATING[4:]:
        if getattr(template, name) is not None:
            fields[name] = floats[:, col]
            col += 1
    if template.fixed is not None:
        fields["fixed"] = ints[:, 3].bool()
    new = object.__new__(ParticleState)
    new.__dict__.update({name: None for name in ("fixed", "mass", "charge")}, **fields)
    return new
