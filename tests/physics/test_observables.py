import math

import pytest
import torch

from sparse_universe import ParticleState
from sparse_universe.physics import Coulomb, PairForceStep
from sparse_universe.physics import observables as obs


def _charged(n=12, d=3, seed=0, universes=2):
    g = torch.Generator().manual_seed(seed)
    return ParticleState(torch.rand(n, d, generator=g, dtype=torch.float64) * 2,
                         torch.randn(n, d, generator=g, dtype=torch.float64),
                         batch=torch.arange(n) % universes,
                         mass=torch.rand(n, generator=g, dtype=torch.float64) + 0.5,
                         charge=torch.randn(n, generator=g, dtype=torch.float64))


def _loops(state, eps):
    """Seed 001's U, A and H by explicit double loops, universe 0 and 1."""
    x, v, m, q, b = state.pos, state.vel, state.mass, state.charge, state.batch
    n = x.size(0)
    u, h = [0.0, 0.0], [0.0, 0.0]
    a = torch.zeros_like(v)
    for i in range(n):
        for j in range(n):
            if i != j and b[i] == b[j]:
                r = float((x[i] - x[j]).norm())
                u[b[i]] += eps**2 * float(q[i] * q[j]) / (2 * r)
                a[i] += q[j] * v[j] / r
    for i in range(n):
        h[b[i]] -= float(((m[i] * v[i] + q[i] * a[i]) ** 2).sum() / (2 * m[i]))
    return torch.tensor(u, dtype=torch.float64), a, torch.tensor(u, dtype=torch.float64) + torch.tensor(h)


def test_kinetic_energy_and_momentum_per_universe():
    s = _charged()
    for b in range(2):
        mask = s.batch == b
        ke = 0.5 * (s.mass[mask] * (s.vel[mask] ** 2).sum(1)).sum()
        assert torch.allclose(obs.kinetic_energy(s)[b], ke)
        assert torch.allclose(obs.momentum(s)[b], (s.mass[mask, None] * s.vel[mask]).sum(0))
    unit = ParticleState(s.pos, s.vel)
    assert torch.allclose(obs.kinetic_energy(unit).sum(), 0.5 * (s.vel**2).sum())


def test_seed_observables_match_double_loops_dense_and_sparse():
    s = _charged()
    u, a, h = _loops(s, eps=0.7)
    assert torch.allclose(obs.coulomb_energy(s, 0.7), u)
    assert torch.allclose(obs.vector_potential(s), a)
    assert torch.allclose(obs.seed_hamiltonian(s, 0.7), h)
    far = 2 * math.sqrt(3) * 2  # a cut-off beyond every pair: the sparse sum is the dense one
    assert torch.allclose(obs.seed_hamiltonian(s, 0.7, cutoff=far), h)
    near = obs.coulomb_energy(s, 0.7, cutoff=0.5)  # a real cut-off keeps only close pairs
    assert not torch.allclose(near, u)


def test_seed_loss_is_c_minus_m_minus_h():
    s = _charged()
    m = s.mass
    for b in range(2):
        mask = s.batch == b
        mass_term = (0.5 * (3 - 1) * torch.log(m[mask]) - 0.5 * 0.7**2 * m[mask]).sum()  # eq. 65's m_i
        assert torch.allclose(obs.seed_mass_term(s, 0.7)[b], mass_term)
        c = 0.5 * (3 + 1) * int(mask.sum()) * math.log(2 * math.pi)
        assert torch.allclose(obs.seed_loss(s, 0.7)[b], c - mass_term - obs.seed_hamiltonian(s, 0.7)[b])


def test_observables_are_differentiable():
    s = _charged()
    pos = s.pos.clone().requires_grad_()
    obs.seed_loss(s.replace(pos=pos), softening=0.01).sum().backward()
    assert pos.grad is not None and bool(torch.isfinite(pos.grad).all()) and float(pos.grad.abs().sum()) > 0


def test_coulomb_step_force_is_minus_the_potential_gradient_and_like_charges_repel():
    s = _charged(universes=1)
    step = PairForceStep(Coulomb(strength=1.5, softening=0.05, cutoff=1.0))
    pos = s.pos.clone().requires_grad_()
    (grad,) = torch.autograd.grad(step.potential_energy(s.replace(pos=pos)).sum(), pos)
    assert torch.allclose(step.acceleration(s) * s.mass[:, None], -grad)
    pair = ParticleState(torch.tensor([[0.0, 0.0], [0.5, 0.0]], dtype=torch.float64),
                         charge=torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert float(step.acceleration(pair)[1, 0]) > 0


def test_charge_observables_need_charges():
    with pytest.raises(ValueError, match="'charge'"):
        obs.coulomb_energy(ParticleState(torch.rand(4, 2)))
    with pytest.raises(ValueError, match="'charge'.*Coulomb"):
        PairForceStep(Coulomb()).acceleration(ParticleState(torch.rand(4, 2)))
