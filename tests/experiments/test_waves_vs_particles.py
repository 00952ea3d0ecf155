import math

import pytest
import torch

from sparse_universe.experiments import train_path as tp
from sparse_universe.experiments import waves_vs_particles as wvp

TINY = tp.Config(universes=1, particles=12, steps=6, iterations=0)
SLITS = wvp.SlitTask(steps=60)


def test_circle_equal_budget_gives_waves_fewer_iterations_and_rows_are_complete():
    rows = [wvp.run_circle(m, s, 2000, TINY) for s in range(2) for m in wvp.METHODS]
    by = {(r["method"], r["seed"]): r for r in rows}
    particles, waves = by[("particles", 0)], by[("waves 4,4", 0)]
    assert particles["iterations"] == 2000 // (12 * 6)
    assert waves["iterations"] == 2000 // (12 * 6 * 4)
    assert abs(particles["node_steps"] - waves["node_steps"]) <= 12 * 6 * 4
    for r in rows:
        assert r["success"] == (r["loss_particle"] < wvp.success_threshold(2))
    assert "success" in wvp.summary(rows)


def test_time_budget_runs_until_the_clock():
    row = wvp.run_circle(wvp.METHODS[0], 0, 0, TINY, seconds=0.3)
    assert row["seconds"] >= 0.3 and row["iterations"] >= 1


def test_threshold_is_one_sigma_from_the_target():
    # -log N(l; x, 1) at |x - l| = 1 in d = 2
    assert abs(wvp.success_threshold(2) - (math.log(2 * math.pi) + 0.5)) < 1e-12


def test_slit_universes_hold_one_wall_and_one_group_per_seed():
    state, members, launch = wvp.slit_universes(SLITS, 3)
    assert members.numel() == 3 * SLITS.group and launch.shape == (3 * SLITS.group, 2)
    assert not bool(state.fixed[members].any()) and int(state.fixed.sum()) == state.num_particles - members.numel()
    assert torch.equal(state.batch[members], torch.arange(3).repeat_interleave(SLITS.group))
    assert torch.allclose(launch.norm(dim=1), torch.ones(3 * SLITS.group))  # unit speed
    again = wvp.slit_universes(SLITS, 2)[2]
    assert torch.equal(again, launch[: 2 * SLITS.group])  # a seed's start does not depend on how many run


def test_slits_training_lowers_the_loss_of_a_seed_and_rows_are_per_seed():
    before = wvp.run_slits(wvp.METHODS[0], 2, 1, SLITS)  # one iteration: about the start
    after = wvp.run_slits(wvp.METHODS[0], 2, 40 * SLITS.group * SLITS.steps, SLITS)
    assert [r["seed"] for r in after] == [0, 1] and after[0]["iterations"] == 40
    assert min(a["loss_particle"] - b["loss_particle"] for a, b in zip(after, before)) < 0
    waves = wvp.run_slits(wvp.METHODS[3], 2, 40 * SLITS.group * SLITS.steps, SLITS)
    assert waves[0]["iterations"] == 10 and waves[0]["node_steps"] == after[0]["node_steps"]


def test_unknown_task():
    with pytest.raises(ValueError, match="'task'"):
        wvp.run("ring")


def test_waves_can_train_on_their_copies():
    (row, _) = wvp.run_slits(wvp.SLIT_METHODS[-1], 2, 8 * SLITS.group * SLITS.steps, SLITS)
    assert row["method"] == "waves 4,4 copies" and row["iterations"] == 2 and math.isfinite(row["loss_particle"])
    with pytest.raises(ValueError, match="circle.*'waves 4,4 copies'"):
        wvp.run_circle(wvp.SLIT_METHODS[-1], 0, 100, TINY)


def test_plot_marks_the_median_the_tables_report(tmp_path, monkeypatch):
    from sparse_universe import viz

    figures = []
    monkeypatch.setattr(viz, "_save", lambda fig, path: figures.append(fig) or path)
    losses = [4.0, 1.0, 3.0, 2.0]  # even count: the median 2.5 is neither middle value
    rows = [{"method": "particles", "loss_particle": v} for v in losses] + [{"method": "waves", "loss_particle": 7.0}]
    viz.plot_methods(rows, 1.0, tmp_path / "m.png", "t")
    (ax,) = figures[0].axes
    bars = [seg for c in ax.collections for seg in getattr(c, "get_segments", lambda: [])()]  # hlines, not dots
    assert [seg[0][1] for seg in bars] == [2.5, 7.0]
    assert "median" in [t.get_text() for t in ax.get_legend().get_texts()]
