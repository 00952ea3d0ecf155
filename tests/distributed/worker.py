"""Checks run inside one gloo process group of 8 ranks (spawned once by test_distributed.py).

Every rank runs every check in the same order; a check on a smaller grid
uses a subgroup of the first ranks, and the other ranks skip it. Each check
compares with the single-process result, which every rank computes itself.
A rank records ``"ok"`` or the failure's traceback per check, in a JSON file.
"""

from __future__ import annotations

import faulthandler
import itertools
import json
import math
import os
import traceback
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist

from sparse_universe import BranchManager, ParticleState, path_loss, radius_graph, rollout, wave_path_loss
from sparse_universe.distributed import DistributedState, all_gather_rows, all_sum, exchange, reduce_gradients
from sparse_universe.experiments.lj_gas import lattice_gas
from sparse_universe.nn import UniverseStep
from sparse_universe.physics import LennardJones, PairForceStep
from sparse_universe.physics.observables import kinetic_energy, momentum

WORLD = 8
GRIDS = {"2": (2, 1, 1), "3": (3, 1, 1), "2x2x1": (2, 2, 1), "2x2x2": (2, 2, 2)}
CHECKS: Dict[str, Callable[[dict], None]] = {}
FAILURES: List[str] = []  # of the running check: recorded, not raised, so every rank runs every collective


def check(name: str):
    def register(fn):
        CHECKS[name] = fn
        return fn
    return register


# --- universes (identical on every rank: fixed seeds) ---------------------------------------------------------

SIDE = 6.0


def cloud(n: int = 160, seed: int = 0) -> ParticleState:
    """Uniform in a periodic cube of side 6, plus particles exactly on brick faces and on the box's faces."""
    g = torch.Generator().manual_seed(seed)
    pos = SIDE * torch.rand(n, 3, generator=g)
    pos[:8, 0] = SIDE / 2  # on faces between bricks: of 2 along x, y and z
    pos[8:12, 1] = SIDE / 2
    pos[12:16, 2] = SIDE / 2
    pos[16:20, 0] = 0.0  # on the periodic face
    pos[20:24, 0] = SIDE / 3  # on faces of the 3-rank grid
    pos[24:28, 0] = 2 * SIDE / 3
    return _state(pos, g)


def cluster(seed: int = 1) -> ParticleState:
    """An open box: a dense ball of 120 and a few far particles, so some bricks are empty."""
    g = torch.Generator().manual_seed(seed)
    ball = 1.0 + 0.8 * torch.nn.functional.normalize(torch.randn(120, 3, generator=g), dim=1) * \
        torch.rand(120, 1, generator=g) ** (1 / 3)
    far = 5.5 + 0.3 * torch.rand(8, 3, generator=g)
    return _state(torch.cat([ball, far]), g)


def _state(pos: torch.Tensor, g: torch.Generator) -> ParticleState:
    n = pos.size(0)
    return ParticleState(pos, 0.5 * torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g),
                         torch.randint(0, 4, (n,), generator=g), torch.rand(n, generator=g) + 0.5,
                         mass=torch.rand(n, generator=g) + 0.5)


CASES = {  # name: (state builder, box, periodic)
    "periodic": (cloud, [SIDE] * 3, None),
    "mixed": (cloud, [SIDE] * 3, [True, False, False]),
    "cluster": (cluster, None, None),
}


def universe_step(box, periodic) -> UniverseStep:
    torch.manual_seed(0)
    return UniverseStep(3, 4, 8, eps=1.0, dt=0.05, sigma=0.0, box=box, periodic=periodic).train()


def pair_step(box, periodic) -> PairForceStep:
    return PairForceStep(LennardJones(sigma=0.8, cutoff=2.0), dt=0.002, box=box, periodic=periodic)


# --- helpers --------------------------------------------------------------------------------------------------

def owners(dstate: DistributedState) -> torch.Tensor:
    """Global owner of every particle, ``-1`` if unowned, ``-2`` if owned twice."""
    gid = all_gather_rows(dstate.gid, dstate.group)
    rank = all_gather_rows(torch.full_like(dstate.gid, dstate.rank), dstate.group)
    out = torch.full((dstate.num_particles,), -1, dtype=torch.long)
    seen = torch.bincount(gid, minlength=dstate.num_particles)
    out[gid] = rank
    out[seen > 1] = -2
    return out


def check_ownership(dstate: DistributedState) -> None:
    """Every particle is owned once, by the rank whose brick held it at the last migration."""
    owner = owners(dstate)
    expect(bool((owner >= 0).all()), f"unowned or doubly owned: {(owner < 0).nonzero().view(-1).tolist()}")
    ref = all_gather_rows(dstate.ref, dstate.group)[torch.argsort(all_gather_rows(dstate.gid, dstate.group))]
    expect(torch.equal(owner, dstate.domain.owner(ref)), "a particle lives on a rank whose brick lacks it")


def brute_halo(pos: np.ndarray, domain, rank: int, width: float) -> set:
    """Rows within ``width`` of brick ``rank`` through any periodic image, by enumerating images (numpy)."""
    coords = np.unravel_index(rank, domain.grid)
    lo, hi = np.array(domain.lo), np.array(domain.hi)
    w = (hi - lo) / np.array(domain.grid)
    a = lo + np.array(coords) * w
    b = a + w
    for k, g in enumerate(domain.grid):  # open edge bricks reach to infinity
        if not domain.periodic[k]:
            a[k] = -np.inf if coords[k] == 0 else a[k]
            b[k] = np.inf if coords[k] == g - 1 else b[k]
    shifts = [[-(hi[k] - lo[k]), 0.0, hi[k] - lo[k]] if domain.periodic[k] else [0.0] for k in range(3)]
    best = np.full(len(pos), np.inf)
    for s in itertools.product(*shifts):
        x = pos + np.array(s)
        best = np.minimum(best, np.linalg.norm(np.clip(x, a, b) - x, axis=1))
    return set(np.nonzero(best <= width)[0].tolist())


def expect(condition: bool, message: str) -> None:
    if not condition:
        FAILURES.append(message)


def compare(name: str, got: torch.Tensor, want: torch.Tensor, tol: float) -> None:
    """``|got - want| <= tol`` relative to the largest ``|want|`` (absolute below 1)."""
    err = float((got - want).abs().max()) if want.numel() else 0.0
    scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
    expect(err <= tol * scale, f"{name}: max |distributed - single| = {err:.3g} > {tol} x {scale:.3g}")


def every_grid_and_case(ctx: dict):
    """``(grid name, grid, group, case, state, box, periodic)`` for every grid this rank takes part in."""
    for (name, grid), (case, (build, box, periodic)) in itertools.product(GRIDS.items(), CASES.items()):
        group = ctx["groups"][math.prod(grid)]
        if group is not None:
            yield name, grid, group, case, build(), box, periodic


# --- checks ---------------------------------------------------------------------------------------------------

@check("exchange")
def _exchange(ctx: dict) -> None:
    """Uneven and zero split sizes, forward, backward and double backward, on 3 ranks."""
    group = ctx["groups"][3]
    if group is None:
        return
    r = dist.get_rank(group)
    send = [(r + 2 * s) % 3 for s in range(3)]  # includes zero splits; rank r -> s sends (r + 2s) % 3 rows
    recv = [(s + 2 * r) % 3 for s in range(3)]
    rows = [(r, s, k) for s in range(3) for k in range(send[s])]
    x = torch.tensor([[100 * a + 10 * b + k, 1.0] for a, b, k in rows]).reshape(-1, 2).requires_grad_()
    out = exchange(x, send, recv, group)
    want = torch.tensor([[100 * s + 10 * r + k, 1.0] for s in range(3) for k in range(recv[s])]).reshape(-1, 2)
    expect(torch.equal(out.detach(), want), f"received {out.tolist()}, expected {want.tolist()}")
    weight = out.detach() * 0.5 + 1.0  # a weight per received row: its gradient goes back to the sender's row
    (grad,) = torch.autograd.grad((out * weight).sum(), x)
    expect(torch.equal(grad, x.detach() * 0.5 + 1.0), "backward did not route gradients to the sending rows")
    (g1,) = torch.autograd.grad((exchange(x, send, recv, group) ** 3).sum(), x, create_graph=True)
    (g2,) = torch.autograd.grad(g1.sum(), x)
    expect(torch.allclose(g1, 3 * x ** 2) and torch.allclose(g2, 6 * x.detach()), "double backward is wrong")
    value = torch.tensor([float(r + 1)], requires_grad=True)
    total = all_sum(value, group)
    gathered = all_gather_rows(value.expand(r, 1), group)  # 0, 1 and 2 rows
    expect(float(total.detach()) == 6.0 and gathered.detach().view(-1).tolist() == [2.0, 3.0, 3.0],
           f"all_sum {total.tolist()}, all_gather_rows {gathered.tolist()}")
    (gv,) = torch.autograd.grad(3 * total.sum() + (gathered * 2).sum(), value)
    expect(float(gv) == 3 + 2 * r, "replicated reductions must back-propagate to the own contribution only")


@check("ownership and halo")
def _ownership(ctx: dict) -> None:
    """After scatter, from_parts and migration every particle is owned once; ghosts equal the brute-force halo."""
    for name, grid, group, case, state, box, periodic in every_grid_and_case(ctx):
        dstate = DistributedState.scatter(state, grid, box=box, periodic=periodic, skin=0.2, group=group)
        check_ownership(dstate)
        width = 2.2
        dstate = dstate.rebuild(width)
        ghosts = set(dstate.halo.ints[:, 2].tolist())
        brute = brute_halo(state.pos.numpy(), dstate.domain, dstate.rank, width) - set(dstate.gid.tolist())
        expect(ghosts == brute, f"{name} {case}: ghosts differ from brute force by {sorted(ghosts ^ brute)[:10]}")
        expect(len(ghosts) == dstate.halo.ints.size(0), f"{name} {case}: a ghost arrived twice")
        if case == "cluster" and math.prod(grid) > 2:
            empty = all_sum(torch.tensor([float(dstate.state.num_particles == 0)]), group)
            expect(float(empty) >= 1, f"{name}: expected an empty rank in the cluster case")
        rank = dist.get_rank(group)
        part = torch.arange(rank, state.num_particles, math.prod(grid))  # round-robin: anywhere in the box
        moved = state.select(part).replace(pos=state.pos[part] + 0.4)  # and moved, so most must migrate
        parts = DistributedState.from_parts(moved, part, grid, box=box, periodic=periodic, group=group)
        check_ownership(parts)


@check("one step")
def _one_step(ctx: dict) -> None:
    """A UniverseStep and a PairForceStep step equal the single-process ones, by global id, to 1e-12."""
    for name, grid, group, case, state, box, periodic in every_grid_and_case(ctx):
        for make in (universe_step, pair_step):
            step = make(box, periodic)
            want = step(state)
            dstate = DistributedState.scatter(state, grid, box=box, periodic=periodic, group=group)
            got = rollout(step, dstate, 1, horizon=None)
            full = got.gather()
            compare(f"{name} {case} {make.__name__} pos", full.pos[1], want.pos, 1e-12)
            compare(f"{name} {case} {make.__name__} vel", full.vel[1], want.vel, 1e-12)


@check("lennard-jones 50 steps")
def _lj(ctx: dict) -> None:
    """50 hot Verlet steps across rank and periodic faces match one process to 1e-9; ownership after rebuilds."""
    for grid in ((2, 1, 1), (2, 2, 2)):
        group = ctx["groups"][math.prod(grid)]
        if group is None:
            continue
        state, side = lattice_gas(216, 0.5, 4.0)
        box = [side] * 3
        step = PairForceStep(LennardJones(cutoff=2.5), dt=0.005, box=box)
        want = rollout(step, state, 50, integrator="verlet", horizon=None)
        dstate = DistributedState.scatter(state, grid, box=box, skin=0.3, group=group)
        rebuilds, gathered = 0, [dstate.gather().pos]
        for _ in range(50):  # one step at a time, to check ownership after every rebuild
            before = dstate.rebuilds
            dstate = rollout(step, dstate, 1, integrator="verlet", horizon=None).final
            if dstate.rebuilds != before:
                rebuilds += 1
                check_ownership(dstate)
            gathered.append(dstate.gather().pos)
        compare(f"{grid} positions", torch.stack(gathered), want.pos, 1e-9)
        expect(1 < rebuilds < 50, f"expected a few rebuilds with skin 0.3 (got {rebuilds})")
        crossed = bool(((want.pos < 0) | (want.pos >= side)).any())
        expect(crossed, "expected particles to cross a periodic face")
        e_got = kinetic_energy(dstate) + step.potential_energy(dstate)
        e_want = kinetic_energy(want.final) + step.potential_energy(want.final)
        compare(f"{grid} energy", e_got, e_want, 1e-9)
        compare(f"{grid} momentum", momentum(dstate), momentum(want.final), 1e-9)


@check("waves")
def _waves(ctx: dict) -> None:
    """Wave mode: with one copy and one head it is the single-process wave rollout; with branching, every
    particle is measured once per step and its copies live together on the rank of its measured position."""
    for grid in ((2, 1, 1), (2, 2, 1)):
        group = ctx["groups"][math.prod(grid)]
        if group is None:
            continue
        for case in ("periodic", "cluster"):
            build, box, periodic = CASES[case]
            state = build()
            manager = BranchManager(universe_step(box, periodic).eval(), num_copies=1, num_heads=1)
            want = rollout(manager, state, 3, horizon=None)
            got = rollout(manager, DistributedState.scatter(state, grid, box=box, periodic=periodic, group=group),
                          3, horizon=None).gather()
            compare(f"{grid} {case} measured", got.pos, want.pos, 1e-12)
            compare(f"{grid} {case} velocity", got.vel, want.vel, 1e-12)
            path = torch.tensor([[3.0, 3.0, 3.0]]).expand(3, 3)
            for reading in ("density", "particle"):
                grads = []
                for start in (state, DistributedState.scatter(state, grid, box=box, periodic=periodic, group=group)):
                    manager.zero_grad()
                    loss = wave_path_loss(rollout(manager, start, 3, horizon=None).waves, path,
                                          torch.arange(0, state.num_particles, 2), reading=reading)
                    loss.backward()
                    if start is not state:
                        reduce_gradients(manager, group)
                    grads.append([loss.detach()] + [p.grad.clone() for p in manager.parameters()])
                for k, (a, b) in enumerate(zip(grads[1], grads[0])):
                    compare(f"{grid} {case} wave_path_loss {reading} {k}", a, b, 1e-10)
            branching = BranchManager(universe_step(box, periodic), num_copies=2, num_heads=3, sigma=0.3).train()
            dstate = DistributedState.scatter(state, grid, box=box, periodic=periodic, group=group)
            traj = rollout(branching, dstate, 3, horizon=None)
            for step in range(4):
                ids = all_gather_rows(traj.pos.gid[step], group)
                expect(torch.equal(ids.sort().values, torch.arange(state.num_particles)),
                       f"{grid} {case}: step {step} did not measure every particle once")
            final = traj.final
            per = torch.bincount(final.gid, minlength=state.num_particles)
            expect(bool((per <= 2).all()), f"{grid} {case}: more than num_copies copies of a particle")
            holders = all_sum((per > 0).double(), group)
            expect(bool((holders == 1).all()), f"{grid} {case}: a particle's copies are on several ranks")
            # the halo widened by the farthest owned row outside its brick holds every pair of an owned row,
            # wherever the rows are (copies spread away from their anchor): particles on random ranks
            rank = dist.get_rank(group)
            scattered = DistributedState.scatter(state, grid, box=box, periodic=periodic, group=group)
            dest = torch.randint(0, math.prod(grid), (scattered.state.num_particles,),
                                 generator=torch.Generator().manual_seed(rank))
            spread = scattered.migrate(dest)
            outside = float(spread.domain.distance(spread.state.pos, rank).max()) if len(spread.gid) else 0.0
            spread = spread.rebuild(1.0 + all_gather_rows(torch.tensor([[outside]]), group).max().item())
            local = spread.local()
            ids = torch.cat([spread.gid, spread.halo.ints[:, 2]])
            edges = radius_graph(local.pos, 1.0, box=box, periodic=periodic)
            edges = ids[edges[:, edges[1] < len(spread.gid)]]
            every = radius_graph(state.pos, 1.0, box=box, periodic=periodic)
            every = every[:, torch.isin(every[1], spread.gid)]
            expect(set(map(tuple, edges.t().tolist())) == set(map(tuple, every.t().tolist())),
                   f"{grid} {case}: the widened halo misses pairs of rows outside their brick")
            measured = traj.pos.gather()[-1]  # (N, d) by particle
            owner = final.domain.owner(measured.index_select(0, final.gid))
            expect(bool((owner == final.rank).all()), f"{grid} {case}: copies not on their measured position's rank")


@check("gradients")
def _gradients(ctx: dict) -> None:
    """Rollout-loss gradients (parameters, initial positions) and a force loss (double backward) match one process."""
    group = ctx["groups"][4]
    if group is None:
        return
    build, box, periodic = CASES["periodic"]
    state = build()
    path = torch.tensor([[3.0, 3.0, 3.0]]).expand(3, 3)
    members = torch.arange(0, state.num_particles, 3)
    for reading in ("density", "particle"):
        grads = []
        for distributed in (False, True):
            step = universe_step(box, periodic)
            pos0 = state.pos.clone().requires_grad_()
            start = state.replace(pos=pos0)
            if distributed:
                start = DistributedState.scatter(start, (2, 2, 1), box=box, group=group, skin=0.1)
            loss = path_loss(rollout(step, start, 3, horizon=None).pos, path, members, 0.7, reading=reading)
            loss.backward()
            if distributed:
                reduce_gradients(step, group)
                dist.all_reduce(pos0.grad, group=group)
            grads.append([pos0.grad] + [p.grad for p in step.parameters()])
        for k, (got, want) in enumerate(zip(grads[1], grads[0])):
            compare(f"{reading} gradient {k}", got, want, 1e-10)
    step = pair_step(box, periodic)
    grads = []
    for distributed in (False, True):
        pos0 = state.pos.clone().requires_grad_()
        start = state.replace(pos=pos0)
        if distributed:
            start = DistributedState.scatter(start, (2, 2, 1), box=box, group=group)
        energy = step.potential_energy(start).sum()
        (force,) = torch.autograd.grad(-energy, pos0, create_graph=True)
        if distributed:  # each rank holds the forces on its own particles
            square = all_sum((force ** 2).sum()[None], group).sum()
        else:
            square = (force ** 2).sum()
        (grad,) = torch.autograd.grad(square, pos0)
        force = force.detach().clone()
        if distributed:
            dist.all_reduce(grad, group=group)
            dist.all_reduce(force, group=group)
        grads.append((force, grad))
    compare("forces", grads[1][0], grads[0][0], 1e-12)
    compare("gradient of the squared forces", grads[1][1], grads[0][1], 1e-10)


@check("training on a 2-D mesh")
def _mesh(ctx: dict) -> None:
    """2 spatial x 2 data-parallel ranks: 3 SGD steps leave the same parameters everywhere, equal to one process."""
    group = ctx["groups"][4]
    if group is None:
        return
    rank = dist.get_rank(group)
    spatial, data = ctx["mesh"]
    _, box, periodic = CASES["periodic"]
    universes = [cloud(seed=5), cloud(seed=6)]
    path = torch.tensor([[2.0, 3.0, 3.0]]).expand(2, 3)
    members = torch.arange(0, universes[0].num_particles, 2)

    def train(distributed: bool) -> List[torch.Tensor]:
        step = universe_step(box, periodic)
        optimizer = torch.optim.SGD(step.parameters(), lr=0.05)
        for _ in range(3):
            optimizer.zero_grad()
            if distributed:  # my universe: rank // 2; my brick: rank % 2
                start = DistributedState.scatter(universes[rank // 2], (2, 1, 1), box=box, group=spatial)
                path_loss(rollout(step, start, 2, horizon=None).pos, path, members).backward()
                reduce_gradients(step, spatial, data)
            else:
                losses = [path_loss(rollout(step, u, 2, horizon=None).pos, path, members) for u in universes]
                (sum(losses) / 2).backward()
            optimizer.step()
        return [p.detach().clone() for p in step.parameters()]

    got, want = train(True), train(False)
    for k, (a, b) in enumerate(zip(got, want)):
        compare(f"parameter {k}", a, b, 1e-10)
        copies = all_gather_rows(a.reshape(1, -1), group)
        expect(torch.equal(copies, a.reshape(1, -1).expand_as(copies)), f"parameter {k} differs between ranks")


def main(rank: int, world: int, port: int, out: str, names: Optional[List[str]] = None) -> None:
    faulthandler.dump_traceback_later(float(os.environ.get("SU_DIST_TIMEOUT", "600")), exit=True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    groups = {size: dist.new_group(list(range(size))) for size in (2, 3, 4)}
    groups = {size: (g if rank < size else None) for size, g in groups.items()}
    groups[world] = dist.group.WORLD
    mesh = [dist.new_group(ranks) for ranks in ([0, 1], [2, 3], [0, 2], [1, 3])]
    ctx = {"groups": groups, "mesh": (mesh[rank // 2], mesh[2 + rank % 2]) if rank < 4 else None}
    results = {}
    for name, fn in CHECKS.items():
        if names is not None and name not in names:
            continue
        FAILURES.clear()
        try:
            fn(ctx)
        except Exception:  # an error in the code under test: the other ranks cannot go on with this one
            results[name] = traceback.format_exc()
            _write(results, out, rank)
            os._exit(1)  # they see the connection close and fail too, instead of hanging
        results[name] = "\n".join(FAILURES) or "ok"
        _write(results, out, rank)
        dist.barrier()
    dist.destroy_process_group()


def _write(results: dict, out: str, rank: int) -> None:
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(results, f)
