import math

import pytest
import torch

from sparse_universe import ParticleState, path_loss, rollout
from sparse_universe.nn import UniverseStep


def _setup(seed=0):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    state = ParticleState(torch.rand(60, 2, generator=g) * 3, torch.randn(60, 2, generator=g) * 0.1,
                          token=torch.randint(0, 3, (60,), generator=g))
    return UniverseStep(2, 3, hidden=16, eps=0.7, dt=0.1, sigma=0.2), state


def test_rollout_shapes_and_gradient_through_every_step():
    step, state = _setup()
    vel0 = state.vel.clone().requires_grad_()
    traj = rollout(step, state.replace(vel=vel0), 6)
    assert traj.pos.shape == (7, 60, 2) and traj.vel.shape == (7, 60, 2)
    assert torch.equal(traj.pos[0], state.pos)
    # The last position depends on the initial velocity through all 6 steps.
    (grad,) = torch.autograd.grad(traj.pos[-1].sum(), vel0)
    assert grad.abs().sum() > 0


def test_checkpointed_rollout_has_the_same_values_and_gradients():
    step, state = _setup(1)
    path = torch.zeros(5, 2)
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(7)
        step.zero_grad()
        traj = rollout(step, state, 5, checkpoint=ckpt)
        path_loss(traj.pos, path, 1, token=state.token).backward()
        grads.append((traj.pos.detach(), [p.grad.clone() for p in step.parameters() if p.grad is not None]))
    assert torch.equal(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1]):
        assert torch.allclose(a, b, atol=1e-6)


def test_path_loss_readings_and_member_forms():
    g = torch.Generator().manual_seed(0)
    positions = torch.randn(4, 10, 2, generator=g)
    path = torch.randn(3, 2, generator=g)
    token = torch.tensor([0, 1] * 5)
    mask = token == 1
    idx = mask.nonzero().view(-1)
    a = path_loss(positions, path, 1, token=token)
    assert torch.equal(a, path_loss(positions, path, mask)) and torch.equal(a, path_loss(positions, path, idx))
    x = positions[1:, idx]  # rows after each step
    log_n = -((x - path[:, None]) ** 2).sum(-1) / 2 - math.log(2 * math.pi)
    assert torch.allclose(a, -(log_n.exp().mean(1).log()).mean())
    assert torch.allclose(path_loss(positions, path, idx, reading="particle"), -log_n.mean())
    assert path_loss(positions, path, idx, reduction="none").shape == (3,)


def test_density_reading_is_stable_far_from_the_path():
    positions = torch.full((3, 4, 2), 1e4, requires_grad=True)
    loss = path_loss(positions, torch.zeros(2, 2), torch.arange(4))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(positions.grad).all()


@pytest.mark.parametrize("kwargs, words", [(dict(members=torch.tensor([], dtype=torch.long)), "at least one"),
                                           (dict(members=5), "'token'"), (dict(sigma=0.0), "'sigma'"),
                                           (dict(members=torch.tensor([11])), r"\[0, 10\)")])
def test_path_loss_bad_input(kwargs, words):
    args = dict(members=torch.tensor([0, 1]), sigma=1.0)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=words):
        path_loss(torch.zeros(3, 10, 2), torch.zeros(2, 2), args["members"], args["sigma"])
