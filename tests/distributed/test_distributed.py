"""Scale-out: one gloo group of 8 processes runs every check of worker.py (spawned once), plus in-process checks."""

import json
import math
import multiprocessing
import socket

import pytest
import torch
import torch.distributed as dist

from sparse_universe import BranchManager, ParticleState, rollout
from sparse_universe.distributed import DistributedState, Domain, HaloTooThin, choose_grid
from sparse_universe.experiments.lj_gas import lattice_gas
from sparse_universe.neighbors import NeighborList
from sparse_universe.nn import UniverseStep
from sparse_universe.physics import Harmonic, LennardJones, PairForceStep
from sparse_universe.physics.observables import coulomb_energy, seed_mass_term

from . import worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every check's outcome on every rank: one spawn of 8 processes for the whole module."""
    out = tmp_path_factory.mktemp("ranks")
    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=worker.main, args=(rank, worker.WORLD, port, str(out)))
             for rank in range(worker.WORLD)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(900)
    for p in procs:
        if p.is_alive():
            p.kill()
    files = [out / f"rank{rank}.json" for rank in range(worker.WORLD)]
    return [p.exitcode for p in procs], [json.loads(f.read_text()) if f.exists() else {} for f in files]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(worker.CHECKS))
def test_distributed(results, name):
    codes, outcomes = results
    failures = {rank: r.get(name, f"not reached (workers exited with {codes}; a hang dumps its stack to stderr)")
                for rank, r in enumerate(outcomes)}
    failures = {rank: text for rank, text in failures.items() if text != "ok"}
    assert not failures, "\n".join(f"rank {rank}:\n{text}" for rank, text in failures.items())


def test_choose_grid():
    assert choose_grid(8, [1.0, 1.0, 1.0]) == (2, 2, 2)
    assert choose_grid(4, [1.0, 1.0, 1.0]) == (2, 2, 1)
    assert choose_grid(4, [8.0, 1.0, 1.0]) == (4, 1, 1)  # slabs across a long box
    assert choose_grid(6, [3.0, 2.0]) == (3, 2)
    assert choose_grid(7, [1.0, 1.0, 1.0]) == (7, 1, 1)


@pytest.mark.parametrize("grid,periodic", [((2, 1, 1), (True, True, True)), ((3, 2, 1), (True, False, True)),
                                           ((2, 2, 2), (False, False, False)), ((4, 1, 1), (True, True, True))])
@pytest.mark.parametrize("width", [0.5, 1.7, 4.0])
def test_halo_is_brute_force(grid, periodic, width):
    """Domain.halo gives, for every rank, exactly the particles within ``width`` of its brick (images included)."""
    g = torch.Generator().manual_seed(3)
    pos = 6.0 * torch.rand(300, 3, generator=g, dtype=torch.float64) - 1.0 * torch.tensor([not p for p in periodic])
    pos[:10, 0] = 3.0  # on a face
    domain = Domain(grid, (0.0, 0.0, 0.0), (6.0, 6.0, 6.0), periodic)
    owner = domain.owner(pos)
    for rank in range(domain.size):
        mine = (owner == rank).nonzero().view(-1)
        index, dest = domain.halo(pos[mine], width, rank)
        assert torch.equal(dest, dest.sort().values)
        for other in range(domain.size):
            got = set(mine[index[dest == other]].tolist())
            want = worker.brute_halo(pos.numpy(), domain, other, width) & set(mine.tolist())
            assert got == (want if other != rank else set()), (rank, other, sorted(got ^ want)[:5])


@pytest.fixture(scope="module")
def one_rank():
    """A gloo group of one process (this one)."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_one_rank_equals_one_process(one_rank):
    """One rank along every axis exchanges with itself through the periodic box: the plain rollout's result."""
    state, side = lattice_gas(125, 0.5, 2.0)
    step = PairForceStep(LennardJones(cutoff=2.5), dt=0.005, box=[side] * 3)
    want = rollout(step, state, 5, integrator="verlet", horizon=None)
    got = rollout(step, DistributedState.scatter(state, box=[side] * 3, skin=0.2), 5, integrator="verlet",
                  horizon=None)
    assert torch.allclose(got.gather().pos, want.pos, atol=1e-12, rtol=0)
    assert len(got.pos) == 6 and torch.equal(got.pos.gid[0], torch.arange(125))


def test_errors(one_rank):
    state = ParticleState(torch.rand(20, 3, dtype=torch.float64))
    dstate = DistributedState.scatter(state, box=[1.0] * 3)
    with pytest.raises(ValueError, match="'grid' of 3 positive ints whose product is the group's size 1"):
        DistributedState.scatter(state, (2, 1, 1))
    with pytest.raises(ValueError, match="periodic box to match"):
        rollout(PairForceStep(LennardJones(cutoff=0.3)), dstate, 1)
    with pytest.raises(ValueError, match="neighbor_search=None"):
        verlet = NeighborList(0.3, skin=0.1, box=[1.0] * 3)
        rollout(PairForceStep(LennardJones(cutoff=0.3), box=[1.0] * 3, neighbor_search=verlet.update), dstate, 1)
    with pytest.raises(ValueError, match="without 'bonds'"):
        bonds = torch.tensor([[0], [1]])
        rollout(PairForceStep(LennardJones(cutoff=0.3), box=[1.0] * 3, bonds=bonds, bond=Harmonic(1.0)), dstate, 1)
    with pytest.raises(ValueError, match="momentum-conserving"):
        rollout(UniverseStep(3, 1, 4, eps=0.3, box=[1.0] * 3, momentum_conserving=True).double(), dstate, 1)
    with pytest.raises(ValueError, match="checkpoint=False on a DistributedState"):
        rollout(PairForceStep(LennardJones(cutoff=0.3), box=[1.0] * 3), dstate, 1, checkpoint=True)
    with pytest.raises(ValueError, match="'integrator=None' in wave mode"):
        rollout(BranchManager(UniverseStep(3, 1, 4, eps=0.3, box=[1.0] * 3)), dstate, 1, integrator="verlet")
    with pytest.raises(TypeError, match="'acceleration\\(state\\)' for integrator='verlet'"):
        rollout(UniverseStep(3, 1, 4, eps=0.3, box=[1.0] * 3), dstate, 1, integrator="verlet")
    with pytest.raises(ValueError, match="'gid' int64 of shape \\(20,\\)"):
        DistributedState.from_parts(state, torch.arange(19))
    assert math.isclose(dstate.moved()[0], 0.0)
    with pytest.raises(TypeError, match="ParticleState for coulomb_energy \\(not distributed yet"):
        coulomb_energy(dstate, cutoff=0.3)
    assert torch.equal(seed_mass_term(dstate, eps=0.5), seed_mass_term(state, eps=0.5))  # summed over ranks
    fast = ParticleState(torch.rand(20, 3, dtype=torch.float64), torch.full((20, 3), 10.0, dtype=torch.float64))
    with pytest.raises(HaloTooThin, match="raise the skin or lower dt"):  # never a silently missed pair
        rollout(PairForceStep(LennardJones(cutoff=0.3), dt=0.01, box=[1.0] * 3),
                DistributedState.scatter(fast, box=[1.0] * 3, skin=0.05), 3, integrator="verlet", horizon=None)
