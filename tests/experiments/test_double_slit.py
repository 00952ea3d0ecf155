import math

import torch

from sparse_universe import rollout
from sparse_universe.experiments import double_slit as ds
from sparse_universe.physics import PairForceStep, SoftSphere


def test_screen_hits_interpolate_the_first_crossing():
    path = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [0.5, 0.0]], [[3.0, 2.0], [0.8, 0.0]],
                         [[1.0, 5.0], [0.9, 0.0]]])  # (T + 1, 2 particles, 2)
    hits = ds.screen_hits(path, 2.0)
    assert math.isclose(float(hits[0]), 1.5) and math.isnan(float(hits[1]))


def test_the_wall_reflects_and_the_slit_transmits():
    cfg = ds.Config(particles=2, sigma=0.0)
    state, per_wall = ds.make_beam(cfg)
    beam = slice(2 * per_wall, None)
    pos = state.pos.clone()
    pos[beam, 1] = torch.tensor([0.0, cfg.slit_centre])  # at the wall between the slits; through a slit
    step = PairForceStep(SoftSphere(cfg.barrier, cfg.size), dt=cfg.dt).eval()
    traj = rollout(step, state.replace(pos=pos), cfg.steps)
    hits = ds.screen_hits(traj.pos[:, beam], cfg.screen)
    assert math.isnan(float(hits[0])) and float(traj.pos[-1, 2 * per_wall, 0]) < cfg.source + 0.5  # came back
    assert math.isclose(float(hits[1]), cfg.slit_centre, abs_tol=1e-6)  # straight through the slit's centre
    assert torch.equal(traj.pos[-1, : 2 * per_wall], state.pos[: 2 * per_wall])  # the wall never moved


def test_cli_writes_csv_and_png(tmp_path):
    rows = ds.main(["--particles", "12", "--steps", "160", "--out", str(tmp_path)])
    assert len(rows) == 24 and {r["method"] for r in rows} == {"particles", "waves 8,4"}
    for r in rows:
        assert r["reached"] == (not math.isnan(r["y_screen"]))
        assert not (r["reached"] and r["reflected"])
    assert (tmp_path / "double_slit.csv").exists() and (tmp_path / "double_slit.png").stat().st_size > 10_000
