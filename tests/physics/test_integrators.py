import functools
import math
import warnings

import pytest
import torch

from sparse_universe import ParticleState, rollout
from sparse_universe.physics import LennardJones, PairForceStep, SoftSphere
from sparse_universe.physics.observables import kinetic_energy, momentum
from sparse_universe.simulate import CollisionHorizonError


def lj_gas(per_side=4, spacing=1.5, temperature=1.0, seed=0):
    """A cubic lattice in a periodic box with Maxwell velocities and zero total momentum (float64)."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.arange(per_side, dtype=torch.float64) * spacing
    pos = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).view(-1, 3)
    vel = math.sqrt(temperature) * torch.randn(pos.shape, generator=g, dtype=torch.float64)
    return ParticleState(pos + 0.1 * spacing, vel - vel.mean(0)), per_side * spacing


def energy(step, state):
    return float(kinetic_energy(state) + step.potential_energy(state))


def drift(integrator, steps=400, dt=0.005):
    state, side = lj_gas()
    step = PairForceStep(LennardJones(), dt=dt, box=[side] * 3)
    traj = rollout(step, state, steps, integrator=integrator)
    e0 = energy(step, state)
    return abs(energy(step, traj.final) - e0) / abs(e0), traj, side


def test_verlet_conserves_lj_energy_across_the_periodic_wrap_and_euler_drifts():
    verlet, traj, side = drift("verlet")
    euler, _, _ = drift("euler")
    assert verlet < 1e-3 and euler > 10 * verlet, (verlet, euler)
    crossed = (traj.pos < 0) | (traj.pos >= side)  # positions are not wrapped: these left the box
    assert int(crossed.any(-1).any(0).sum()) >= 5
    p = momentum(traj.final)
    assert float(p.abs().max()) < 1e-10  # pair forces are antisymmetric: momentum to float precision


def test_semi_implicit_is_the_steps_own_update():
    state, side = lj_gas()
    step = PairForceStep(LennardJones(), dt=0.005, box=[side] * 3)
    assert torch.allclose(rollout(step, state, 5, integrator="semi-implicit").pos, rollout(step, state, 5).pos)


DIMER = ParticleState(torch.tensor([[0.0, 0.0], [1.05, 0.0]], dtype=torch.float64),
                      torch.tensor([[0.3, 0.1], [-0.3, -0.1]], dtype=torch.float64))


@functools.cache
def _dimer_reference():
    return rollout(PairForceStep(LennardJones(), dt=1e-3), DIMER, 500, integrator="rk4").final.pos


def _dimer_error(integrator, dt):
    """Position error at t = 0.5 of an LJ dimer, against RK4 at a step 5-10x smaller."""
    state, reference = DIMER, _dimer_reference()
    out = rollout(PairForceStep(LennardJones(), dt=dt), state, round(0.5 / dt), integrator=integrator).final.pos
    return float((out - reference).norm())


@pytest.mark.parametrize("integrator, order", [("euler", 1), ("verlet", 2), ("rk4", 4)])
def test_convergence_order(integrator, order):
    coarse, fine = _dimer_error(integrator, 0.01), _dimer_error(integrator, 0.005)
    assert 0.75 * order < math.log2(coarse / fine) < 1.3 * order + 0.3, (coarse, fine)


@pytest.mark.parametrize("integrator", ["euler", "verlet", "rk4"])
def test_integrators_keep_fixed_particles_and_respect_masses(integrator):
    pos = torch.tensor([[0.0, 0.0], [0.8, 0.0], [-0.8, 0.0]], dtype=torch.float64)
    state = ParticleState(pos, fixed=torch.tensor([True, False, False]),
                          mass=torch.tensor([1.0, 1.0, 4.0], dtype=torch.float64))
    traj = rollout(PairForceStep(SoftSphere(1.0, 1.0), dt=0.01), state, 30, integrator=integrator)
    assert torch.equal(traj.pos[:, 0], pos[:1].expand(31, 2))
    pushed = traj.final.pos[1:, 0].abs() - 0.8  # equal and opposite forces, a = F / m
    assert math.isclose(float(pushed[0]), 4 * float(pushed[1]), rel_tol=0.1)


def test_collision_horizon_warns_once_or_raises():
    state = ParticleState(torch.tensor([[0.0, 0.0], [5.0, 0.0]]), torch.tensor([[30.0, 0.0], [0.0, 0.0]]))
    step = PairForceStep(SoftSphere(1.0, 0.2), dt=0.01)  # 30 * 0.01 = 0.3 > 0.2
    with pytest.warns(RuntimeWarning, match=r"max \|v\| \* dt = 0.3 > eps = 0.2") as record:
        rollout(step, state, 3)
    assert len(record) == 1
    with pytest.raises(CollisionHorizonError, match="Lower dt"):
        rollout(step, state, 3, horizon="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rollout(step, state, 3, horizon=None)


def test_bad_integrator_and_step():
    state = ParticleState(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="'integrator'.*'leapfrog'"):
        rollout(PairForceStep(SoftSphere()), state, 1, integrator="leapfrog")
    with pytest.raises(TypeError, match="'acceleration"):
        rollout(lambda s: s, state, 1, integrator="verlet")
    with pytest.raises(ValueError, match="'horizon'"):
        rollout(PairForceStep(SoftSphere()), state, 1, horizon="ignore")
