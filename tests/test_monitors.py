import math

import pytest
import torch

from sparse_universe.experiments import train_path as tp
from sparse_universe.monitors import EnergyDrift, GradNormExplosion, LossSpike, TrainingStopped, check


def test_loss_spike_needs_a_full_window_then_compares_with_the_median():
    spike = LossSpike(factor=3, window=4)
    assert [spike(dict(loss=v)) for v in (1.0, 1.2, 0.9, 1.1)] == [None] * 4
    assert spike(dict(loss=2.5)) is None
    assert "spike: 9 > 3 x the median" in spike(dict(loss=9.0))
    assert "nan" in LossSpike()(dict(loss=math.nan))


def test_grad_norm_and_energy_drift():
    assert GradNormExplosion(100)(dict(grad_norm=99.0)) is None
    assert "1000 exceeds 100" in GradNormExplosion(100)(dict(grad_norm=1000.0))
    drift = EnergyDrift(0.1)
    assert drift(dict(energy=torch.tensor([2.0, 2.1, 1.9]))) is None
    assert "0.5 over the rollout" in drift(dict(energy=torch.tensor([2.0, 2.2, 3.0])))
    assert drift(dict()) is None  # nothing to check without an energy


def test_check_warns_or_stops_with_the_monitors_message():
    record = dict(iteration=7, loss=1.0, grad_norm=1e6)
    with pytest.warns(RuntimeWarning, match="GradNormExplosion at iteration 7"):
        assert len(check([GradNormExplosion(10)], record)) == 1
    with pytest.raises(TrainingStopped, match="GradNormExplosion at iteration 7: gradient norm"):
        check([GradNormExplosion(10, stop=True)], record)


def test_training_entry_point_stops_and_saves(tmp_path, capsys):
    cfg = tp.Config(universes=1, particles=10, steps=4, iterations=5, grad_limit=1e-9, monitor_stop=True)
    history = tp.train(cfg, tmp_path / "ck.pt", progress=False)
    assert history == [] and (tmp_path / "ck.pt").exists()
    assert "training stopped: GradNormExplosion at iteration 1" in capsys.readouterr().out
    warned = tp.Config(universes=1, particles=10, steps=4, iterations=3, grad_limit=1e-9)
    with pytest.warns(RuntimeWarning, match="GradNormExplosion"):
        assert len(tp.train(warned, progress=False)) == 3  # warnings do not stop the run


@pytest.mark.parametrize("make", [lambda: LossSpike(factor=1), lambda: GradNormExplosion(0), lambda: EnergyDrift(-1)])
def test_bad_limits(make):
    with pytest.raises(ValueError, match="Expected"):
        make()
