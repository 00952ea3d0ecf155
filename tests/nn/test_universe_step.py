import pytest
import torch

from sparse_universe import ParticleState
from sparse_universe.nn import UniverseStep


def _state(n=80, d=2, seed=0, universes=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return ParticleState(torch.rand(n, d, generator=g, dtype=dtype) * 3, torch.randn(n, d, generator=g, dtype=dtype),
                         torch.randn(n, d, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g),
                         batch=torch.arange(n) % universes)


@pytest.mark.parametrize("mode", ["concat", "sum"])
@pytest.mark.parametrize("inertia", [False, True])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_eval_is_deterministic_equivariant_and_translation_invariant(mode, inertia, layer_norm):
    torch.manual_seed(0)
    step = UniverseStep(2, 3, hidden=16, eps=0.6, dt=0.1, mode=mode, inertia=inertia, layer_norm=layer_norm).eval()
    s = _state()
    out = step(s)
    assert torch.equal(out.vel, step(s).vel)
    assert torch.allclose(out.pos, s.pos + 0.1 * out.vel)
    perm = torch.randperm(80)
    permuted = ParticleState(s.pos[perm], s.vel[perm], s.spin[perm], s.token[perm])
    assert torch.allclose(step(permuted).vel, out.vel[perm], atol=1e-5)
    shifted = s.replace(pos=s.pos + torch.tensor([5.0, -2.0]))
    assert torch.allclose(step(shifted).vel, out.vel, atol=1e-4)


def test_variational_velocity_samples_around_the_mean_with_straight_through_gradient():
    torch.manual_seed(1)
    step = UniverseStep(2, 3, hidden=16, eps=0.6, sigma=0.5)
    s = _state(2000)
    mean = step.eval()(s).vel.detach()
    step.train()
    vel = step(s).vel
    noise = (vel - mean).detach()
    assert abs(noise.mean().item()) < 0.03 and abs(noise.std().item() - 0.5) < 0.03
    # The gradient is that of the mean: d(sum v')/d theta equals d(sum v_hat)/d theta.
    grads = []
    for train in (True, False):
        step.zero_grad()
        step.train(train)
        step(s).vel.sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in step.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


@pytest.mark.parametrize("train", [False, True])
def test_momentum_conserving_mode(train):
    torch.manual_seed(2)
    step = UniverseStep(3, 3, hidden=16, eps=0.8, dt=0.05, momentum_conserving=True, sigma=0.3).train(train)
    s = _state(300, d=3, universes=3, dtype=torch.float64).to(torch.float64)
    step = step.double()
    for _ in range(5):
        nxt = step(s)
        for b in range(3):
            m = s.batch == b
            before, after = s.vel[m].sum(0), nxt.vel[m].sum(0)
            assert torch.allclose(after, before, atol=1e-10), (after - before)
        assert not torch.allclose(nxt.vel, s.vel)  # it does change the particles
        s = nxt.replace(vel=nxt.vel.detach(), pos=nxt.pos.detach())


def test_universes_in_one_batch_step_independently():
    torch.manual_seed(3)
    step = UniverseStep(2, 3, hidden=16, eps=0.6).eval()
    s = _state(90, universes=3)
    together = step(s)
    for b in range(3):
        m = s.batch == b
        alone = step(ParticleState(s.pos[m], s.vel[m], s.spin[m], s.token[m]))
        assert torch.allclose(together.vel[m], alone.vel, atol=1e-5)


def test_torch_compile_matches_eager():
    torch.manual_seed(4)
    step = UniverseStep(2, 3, hidden=16, eps=0.6, surrogate="dense").eval()
    s = _state(40)
    eager = step(s)
    compiled = torch.compile(step)
    out = compiled(s)
    assert torch.allclose(out.vel, eager.vel, atol=1e-5) and torch.allclose(out.pos, eager.pos, atol=1e-5)


@pytest.mark.parametrize("kwargs, words", [(dict(eps=-1.0), "'eps'"), (dict(mode="mean"), "'mode'"),
                                           (dict(sigma=-0.1), "'sigma'")])
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        UniverseStep(2, 3, **kwargs)


def test_state_of_the_wrong_dimension():
    with pytest.raises(ValueError, match="3 dimensions"):
        UniverseStep(3, 3)(_state(d=2))


def test_reset_parameters_restores_a_fresh_model():
    step = UniverseStep(2, 3, hidden=8, eps=0.5, inertia=True, layer_norm=True)
    for p in step.parameters():
        torch.nn.init.constant_(p, 0.7)
    step.reset_parameters()
    assert torch.equal(step.mlp2[-1].weight, torch.zeros_like(step.mlp2[-1].weight))  # residual branch at zero
    assert not torch.equal(step.mlp1[1].weight, torch.full_like(step.mlp1[1].weight, 0.7))
    assert not torch.equal(step.codebook.weight, torch.full_like(step.codebook.weight, 0.7))
    assert "mode='concat'" in repr(step) and "CollisionConv" in repr(step)


def test_two_runs_forward_and_backward_are_bit_identical(device):
    # On CUDA the aggregation sums by CSR segments (no atomics): the same bits every run.
    g = torch.Generator().manual_seed(11)
    pos = torch.rand(400, 3, generator=g) * 4
    state = ParticleState(pos.to(device), torch.randn(400, 3, generator=g).to(device),
                          token=torch.randint(0, 3, (400,), generator=g).to(device), num_tokens=3)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        step = UniverseStep(3, 3, hidden=16, eps=0.6, sigma=0.0).to(device)
        out = step(state)
        out.vel.square().sum().backward()
        results.append((out.pos.detach(), [p.grad.clone() for p in step.parameters()]))
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("momentum_conserving", [False, True])
def test_a_box_periodic_on_some_axes(momentum_conserving):
    """``periodic`` masking axes of ``box`` (an inf side is the same): pairs wrap across the periodic face only."""
    pos = torch.tensor([[0.1, 3.0], [5.9, 3.0], [3.0, 0.1], [3.0, 5.9]], dtype=torch.float64)
    state = ParticleState(pos, torch.randn(4, 2, dtype=torch.float64))
    torch.manual_seed(0)
    step = UniverseStep(2, 1, 8, eps=0.5, box=[6.0, 6.0], periodic=[True, False],
                        momentum_conserving=momentum_conserving).double().eval()
    assert step.graph(pos, None).tolist() == [[1, 0], [0, 1]]  # across x only
    out = step(state)
    step.collide.box, step.collide.periodic = [6.0, float("inf")], None
    assert torch.equal(step(state).vel, out.vel)
    step.collide.box = None  # open: the pair across x no longer meets
    assert not torch.equal(step(state).vel[:2], out.vel[:2]) and torch.equal(step(state).vel[2:], out.vel[2:])
