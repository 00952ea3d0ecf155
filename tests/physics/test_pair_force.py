import pytest
import torch

from sparse_universe import ParticleState, rollout
from sparse_universe.physics import LennardJones, PairForceStep


def _gas(n=60, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    side = (n / 0.3) ** (1 / d)  # reduced density 0.3, overlaps avoided by a jittered lattice
    per = int(round(n ** (1 / d))) + 1
    grid = torch.stack(torch.meshgrid(*[torch.arange(per)] * d, indexing="ij"), -1).view(-1, d)[:n].double()
    pos = grid * side / per + 0.05 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return ParticleState(pos, 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)), side


def test_lennard_jones_force_is_minus_the_energy_derivative_and_shifted_to_zero():
    lj = LennardJones(epsilon=1.3, sigma=0.9)
    r = torch.linspace(0.8, 2.2, 50, dtype=torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad(lj.energy(r).sum(), r)
    assert torch.allclose(lj.force(r), -grad)
    rc = torch.tensor([lj.cutoff, lj.cutoff * 1.01], dtype=torch.float64)
    assert torch.allclose(lj.energy(rc), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    wca = LennardJones.repulsive(sigma=0.5)
    assert bool((wca.force(torch.linspace(0.3, 1.0, 100)) >= 0).all())  # purely repulsive


@pytest.mark.parametrize("bad", [dict(epsilon=0.0), dict(sigma=-1.0), dict(cutoff=0.0)])
def test_lennard_jones_bad_arguments(bad):
    with pytest.raises(ValueError, match=f"'{next(iter(bad))}'"):
        LennardJones(**bad)


def test_acceleration_is_minus_the_gradient_of_the_dense_energy():
    state, _ = _gas()
    lj = LennardJones()
    step = PairForceStep(lj)
    pos = state.pos.clone().requires_grad_()
    i, j = torch.triu_indices(pos.size(0), pos.size(0), 1)
    dist = (pos[i] - pos[j]).norm(dim=-1)
    energy = lj.energy(dist).sum()  # every pair once, brute force
    (grad,) = torch.autograd.grad(energy, pos)
    acc = step.acceleration(state)
    assert float(acc.abs().max()) > 0.1 and torch.allclose(acc, -grad, atol=1e-9)
    assert torch.allclose(acc.sum(0), torch.zeros(3, dtype=torch.float64), atol=1e-9)  # Newton's third law


def test_step_is_the_seed_update_order_and_periodic_box_wraps_forces():
    state, side = _gas(d=2, n=40)
    step = PairForceStep(LennardJones(), dt=0.005, box=[side, side])
    nxt = step(state)
    vel = state.vel + step.dt * step.acceleration(state)
    assert torch.allclose(nxt.vel, vel) and torch.allclose(nxt.pos, state.pos + step.dt * vel)
    shifted = state.replace(pos=state.pos + torch.tensor([side, -side], dtype=torch.float64))
    assert torch.allclose(step.acceleration(shifted), step.acceleration(state), atol=1e-9)


def test_fixed_particles_push_but_never_move():
    pos = torch.tensor([[0.0, 0.0], [0.9, 0.0]], dtype=torch.float64)
    vel = torch.tensor([[0.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    state = ParticleState(pos, vel, fixed=torch.tensor([True, False]))
    traj = rollout(PairForceStep(LennardJones.repulsive(sigma=0.5), dt=0.01), state, 200)
    assert torch.equal(traj.pos[:, 0], pos[:1].expand(201, 2))
    assert float(traj.vel[-1, 1, 0]) > 0.9  # bounced back at (almost) its incoming speed


def test_bad_step_arguments():
    with pytest.raises(ValueError, match="'dt'"):
        PairForceStep(LennardJones(), dt=0.0)
