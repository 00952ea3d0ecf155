import pytest
import torch

from sparse_universe.experiments import train_path as tp

SMALL = dict(universes=2, particles=24, steps=12, iterations=40, lr=1e-2)


def test_training_beats_the_untrained_model_by_a_clear_margin():
    cfg = tp.Config(**SMALL)
    state = tp.make_universes(cfg)
    before = tp.evaluate(tp.build_model(cfg), state, cfg)
    model = tp.build_model(cfg)
    torch.manual_seed(cfg.seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for _ in range(cfg.iterations):
        opt.zero_grad()
        loss = tp.loss_of(model, state, cfg, cfg.reading)
        loss.backward()
        opt.step()
    after = tp.evaluate(model, state, cfg)
    assert after["particle"] < before["particle"] - 0.5, (before, after)


def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    cfg = tp.Config(**{**SMALL, "iterations": 12})
    straight = tmp_path / "straight.pt"
    history = tp.train(cfg, straight, progress=False, save_every=4)

    crashing = tmp_path / "crashing.pt"
    calls = {"n": 0}
    real_loss = tp.loss_of

    def crash_after_seven(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 7:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(tp, "loss_of", crash_after_seven)
    with pytest.raises(KeyboardInterrupt):
        tp.train(cfg, crashing, progress=False, save_every=4)
    monkeypatch.setattr(tp, "loss_of", real_loss)
    assert torch.load(crashing, weights_only=False)["iteration"] == 4  # the last save before the crash
    resumed = tp.train(cfg, crashing, resume=True, progress=False, save_every=4)
    assert resumed == history
    a, b = torch.load(straight, weights_only=False), torch.load(crashing, weights_only=False)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    with pytest.raises(ValueError, match="another config"):
        tp.train(tp.Config(**{**SMALL, "iterations": 13}), crashing, resume=True, progress=False)


def test_cli_writes_csv_and_figures(tmp_path):
    result = tp.main(["--universes", "1", "--particles", "12", "--steps", "6", "--iterations", "3",
                      "--out", str(tmp_path)])
    for name in ("train_path.csv", "train_path_loss.png", "train_path_trajectories.png", "train_path.pt"):
        assert (tmp_path / name).stat().st_size > 0
    assert set(result) == {"before", "after"}


@pytest.mark.parametrize("shape", ["circle", "eight"])
def test_paths_start_at_the_group_and_close(shape):
    cfg = tp.Config(path=shape, steps=40)
    path = tp.make_path(cfg)
    assert path.shape == (40, 2)
    assert torch.allclose(path[-1], torch.zeros(2), atol=1e-5)  # one full loop back to the start
    assert float(path.norm(dim=1).max()) >= 0.9 * cfg.radius  # and it does go somewhere
