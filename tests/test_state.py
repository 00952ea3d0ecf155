import math

import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from sparse_universe import ParticleState


def _state(n=10, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ParticleState(torch.rand(n, d, generator=g), torch.randn(n, d, generator=g), torch.randn(n, d, generator=g),
                         torch.randint(0, 4, (n,), generator=g), torch.rand(n, generator=g), num_tokens=4)


def test_round_trip_through_data_batch_and_dataloader():
    states = [_state(5 + k, seed=k) for k in range(4)]
    batch = Batch.from_data_list([s.to_data() for s in states])
    merged = ParticleState.from_data(batch)
    assert merged.num_particles == sum(s.num_particles for s in states)
    assert torch.equal(merged.batch, batch.batch)
    assert torch.equal(merged.token, torch.cat([s.token for s in states]))  # ids are not shifted like indices
    loaded = [ParticleState.from_data(b) for b in DataLoader([s.to_data() for s in states], batch_size=2)]
    assert [int(s.batch.max()) + 1 for s in loaded] == [2, 2]
    assert torch.equal(torch.cat([s.pos for s in loaded]), merged.pos)


def test_defaults_and_evolve():
    s = ParticleState(torch.rand(6, 2))
    assert torch.equal(s.vel, torch.zeros(6, 2)) and torch.equal(s.score, torch.ones(6))
    nxt = s.evolve(s.pos + 1, s.vel + 2)
    assert torch.equal(nxt.pos, s.pos + 1) and nxt.token is s.token


@pytest.mark.parametrize(
    "change, error, words",
    [
        (dict(vel=torch.zeros(10, 2)), ValueError, ["'vel'", "(10, 3)", "(10, 2)"]),
        (dict(token=torch.full((10,), 4)), ValueError, ["'token'", "num_tokens=4", "4"]),
        (dict(token=torch.zeros(10)), TypeError, ["'token'", "integer"]),
        (dict(score=torch.zeros(9)), ValueError, ["'score'", "(10,)", "(9,)"]),
        (dict(score=torch.full((10,), math.nan)), ValueError, ["'score'", "finite"]),
        (dict(spin=torch.full((10, 3), math.inf)), ValueError, ["'spin'", "NaN or inf in 10"]),
        (dict(batch=-torch.ones(10, dtype=torch.long)), ValueError, ["'batch'", ">= 0"]),
    ],
)
def test_bad_fields_are_named(change, error, words):
    s = _state()
    fields = dict(pos=s.pos, vel=s.vel, spin=s.spin, token=s.token, score=s.score, batch=s.batch)
    fields.update(change)
    with pytest.raises(error) as info:
        ParticleState(**fields, num_tokens=4)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_nan_position_is_reported():
    pos = torch.rand(5, 2)
    pos[2, 1] = math.nan
    with pytest.raises(ValueError, match="'pos'.*1 of 5"):
        ParticleState(pos)


def test_fixed_mask_round_trips_and_is_validated():
    s = _state().replace(fixed=torch.arange(10) < 3)
    back = ParticleState.from_data(Batch.from_data_list([s.to_data(), s.to_data()]))
    assert torch.equal(back.fixed, torch.cat([s.fixed, s.fixed]))
    picked = s.select(torch.tensor([0, 5]))
    assert torch.equal(picked.fixed, torch.tensor([True, False])) and torch.equal(picked.pos, s.pos[[0, 5]])
    pos, vel = s.moving(s.pos + 1, s.vel + 1)
    assert torch.equal(pos[:3], s.pos[:3]) and torch.equal(pos[3:], s.pos[3:] + 1) and torch.equal(vel[:3], s.vel[:3])
    with pytest.raises(ValueError, match="'fixed'.*torch.bool.*\\(10,\\)"):
        ParticleState(s.pos, fixed=torch.zeros(10))


def test_mass_and_charge_are_optional_validated_and_carried():
    s = _state().replace(mass=torch.rand(10) + 0.5, charge=torch.randn(10))
    back = ParticleState.from_data(s.to_data())
    assert torch.equal(back.mass, s.mass) and torch.equal(back.charge, s.charge) and back.fixed is None
    assert s.to(torch.float64).mass.dtype == torch.float64
    with pytest.raises(ValueError, match="'mass' > 0"):
        ParticleState(s.pos, mass=torch.zeros(10))
    with pytest.raises(ValueError, match="'charge'.*floating.*\\(10,\\)"):
        ParticleState(s.pos, charge=torch.ones(10, dtype=torch.long))
