import itertools
import math

import pytest
import torch

from sparse_universe import BranchManager, ParticleState, WaveState, path_loss, rollout, wave_path_loss
from sparse_universe.nn import UniverseStep


def _universe(n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ParticleState(torch.rand(n, 2, generator=g, dtype=torch.float64) * 2,
                         0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64),
                         torch.randn(n, 2, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g),
                         batch=torch.arange(n) % 2)


def _step(**kw):
    torch.manual_seed(0)
    return UniverseStep(2, 3, hidden=8, eps=0.4, dt=0.1, sigma=0.3, inertia=True, **kw).double()


@pytest.mark.parametrize("k, h", [(4, 4), (3, 2), (5, 1), (1, 3)])
def test_copy_counts_grow_to_k(k, h):
    manager = BranchManager(_step(), num_copies=k, num_heads=h)
    wave = WaveState.from_particles(_universe())
    expected = torch.ones(30, dtype=torch.long)
    for _ in range(4):
        wave, measured = manager(wave)
        expected = torch.clamp(expected * h, max=k)
        assert torch.equal(wave.copies_per_particle(), expected)
        assert measured.shape == (30, 2)
        assert torch.equal(wave.copies.batch, wave.particle % 2)  # copies stay in their universe


def test_entangling_rule_on_a_hand_built_case():
    step = _step()
    manager = BranchManager(step, num_copies=1, num_heads=1)
    pos = torch.tensor([[0.0, 0.0], [0.3, 0.0], [0.0, 0.25], [5.0, 5.0]], dtype=torch.float64)
    state = ParticleState(pos, token=torch.zeros(4, dtype=torch.long))
    wave = WaveState.from_particles(state)
    delta = step.collide.conv.delta
    w = lambda r: 1 / math.sqrt(r * r + delta * delta)  # noqa: E731
    d12 = math.hypot(0.3, 0.25)  # 0.39 <= eps = 0.4: they collide too
    expected = torch.tensor([1 + w(0.3) + w(0.25), 1 + w(0.3) + w(d12), 1 + w(0.25) + w(d12), 1.0],
                            dtype=torch.float64)
    increment = manager.entangle(state, manager.graph(state, wave.particle))
    assert torch.allclose(1 + increment, expected)
    new, _ = manager.eval()(wave)
    assert torch.allclose(new.copies.score, expected)


def test_copies_of_one_particle_do_not_collide_unless_asked():
    pos = torch.tensor([[0.0, 0.0], [0.1, 0.0]], dtype=torch.float64)
    copies = ParticleState(pos)
    wave = WaveState(copies, torch.tensor([0, 0]), 1)
    assert BranchManager(_step()).graph(copies, wave.particle).size(1) == 0
    assert BranchManager(_step(), interact_within=True).graph(copies, wave.particle).size(1) == 2


def test_gumbel_top_k_matches_sampling_without_replacement():
    torch.manual_seed(1)
    manager = BranchManager(_step(), num_copies=2, num_heads=1)
    score = torch.tensor([0.0, 1.0, -0.5, 0.7], dtype=torch.float64)
    p = torch.softmax(score, 0).tolist()
    draws = 20000
    group = torch.zeros(4 * draws, dtype=torch.long).view(draws, 4) + torch.arange(draws)[:, None]
    keep, weight = manager.prune(score.repeat(draws), group.view(-1), draws)
    assert torch.equal(weight, torch.ones_like(weight))  # value 1: pruning does not rescale
    kept = keep.view(draws, 2) % 4
    counts = {}
    for a, b in kept.tolist():
        counts[(a, b)] = counts.get((a, b), 0) + 1
    for a, b in itertools.combinations(range(4), 2):
        exact = p[a] * p[b] / (1 - p[a]) + p[b] * p[a] / (1 - p[b])
        freq = counts.get((a, b), 0) / draws
        assert abs(freq - exact) < 4 * math.sqrt(exact * (1 - exact) / draws) + 1e-3, ((a, b), freq, exact)


def test_collapse_frequencies_follow_softmax_of_scores():
    torch.manual_seed(2)
    manager = BranchManager(_step())
    score = torch.tensor([0.2, 1.5, -1.0], dtype=torch.float64)
    draws = 20000
    pos = torch.arange(3, dtype=torch.float64)[:, None].repeat(draws, 2)  # copy j sits at (j, j)
    copies = ParticleState(pos, score=score.repeat(draws))
    wave = WaveState(copies, torch.arange(draws).repeat_interleave(3), draws)
    measured = manager.collapse(wave)[:, 0]
    assert torch.equal(measured, measured.round())  # exactly one copy's position, no blend
    measured = measured.long()
    freq = torch.bincount(measured, minlength=3).double() / draws
    assert torch.allclose(freq, torch.softmax(score, 0), atol=0.015), freq


def test_gradients_reach_parameters_and_scores_through_pruning_and_collapse():
    step = _step()
    manager = BranchManager(step, num_copies=3, num_heads=3)
    state = _universe()
    wave = WaveState.from_particles(state)
    score = wave.copies.score.clone().requires_grad_()
    wave = WaveState(wave.copies.replace(score=score), wave.particle, wave.num_particles)
    for _ in range(3):
        wave, measured = manager(wave)
    loss = path_loss(measured[None], torch.zeros(1, 2, dtype=torch.float64), torch.arange(30), reading="particle")
    loss.backward()
    assert score.grad is not None and score.grad.abs().sum() > 0
    grads = [p.grad for p in step.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_k_h_one_is_exactly_the_particle_universe():
    state = _universe()
    step = _step()
    torch.manual_seed(5)
    particles = rollout(step, state, 5)
    torch.manual_seed(5)
    waves = rollout(BranchManager(step, num_copies=1, num_heads=1), state, 5)
    assert torch.equal(waves.pos, particles.pos)
    assert len(waves.waves) == 5 and waves.final.num_particles == 30


@pytest.mark.parametrize("kwargs, words", [(dict(num_copies=0), "'num_copies'"), (dict(num_heads=0), "'num_heads'"),
                                           (dict(temperature=0.0), "'temperature'")])
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        BranchManager(_step(), **kwargs)


def test_mismatched_particle_index():
    copies = ParticleState(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="'particle'.*\\(4,\\)"):
        WaveState(copies, torch.tensor([0, 1, 2]), 3)
    with pytest.raises(ValueError, match=r"'particle' ids in \[0, 2\)"):
        WaveState(copies, torch.tensor([0, 1, 2, 1]), 2)


def test_fixed_particles_keep_one_copy_that_never_moves():
    state = _universe()
    fixed = torch.arange(30) < 10
    state = state.replace(fixed=fixed)
    manager = BranchManager(_step(), num_copies=3, num_heads=2)
    wave = WaveState.from_particles(state)
    for _ in range(3):
        wave, measured = manager(wave)
    counts = wave.copies_per_particle()
    assert torch.equal(counts[:10], torch.ones(10, dtype=torch.long)) and bool((counts[10:] == 3).all())
    obstacles = wave.copies.fixed
    assert torch.equal(wave.particle[obstacles], torch.arange(10))
    assert torch.equal(wave.copies.pos[obstacles], state.pos[:10]) and torch.equal(measured[:10], state.pos[:10])
    assert torch.equal(wave.copies.vel[obstacles], state.vel[:10])


def test_wave_path_loss_is_the_expectation_over_the_measurement():
    copies = ParticleState(torch.tensor([[0.0, 0.0], [2.5, 0.0], [1.0, 1.0]], dtype=torch.float64),
                           score=torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64).requires_grad_())
    wave = WaveState(copies, torch.tensor([0, 0, 1]), 2)
    path = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    p = torch.softmax(torch.tensor([0.0, 1.0], dtype=torch.float64), 0)
    nll = lambda x: float(((x - path[0]) ** 2).sum() / 2 + math.log(2 * math.pi))  # noqa: E731
    loss = wave_path_loss([wave], path, torch.tensor([0]), reading="particle")
    assert math.isclose(float(loss), float(p[0]) * nll(copies.pos[0]) + float(p[1]) * nll(copies.pos[1]))
    density = wave_path_loss([wave], path, torch.tensor([0, 1]))
    mix = 0.5 * (p[0] * math.exp(-nll(copies.pos[0])) + p[1] * math.exp(-nll(copies.pos[1]))
                 + math.exp(-nll(copies.pos[2])))
    assert math.isclose(float(density), -math.log(float(mix)))
    loss.backward()
    assert float(copies.score.grad[0]) != 0 and float(copies.score.grad[2]) == 0  # only member copies count


@pytest.mark.parametrize("reading", ["particle", "density"])
def test_wave_path_loss_with_one_copy_is_path_loss(reading):
    state = _universe()
    traj = rollout(BranchManager(_step().eval(), num_copies=1, num_heads=1), state, 4)
    path = torch.randn(4, 2, dtype=torch.float64)
    members = state.token == 1
    assert torch.allclose(wave_path_loss(traj.waves, path, members, 0.7, reading=reading),
                          path_loss(traj.pos, path, members, 0.7, reading=reading))
