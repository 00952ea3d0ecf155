from sparse_universe.experiments import train_path as tp
from sparse_universe.experiments import waves_vs_particles as wvp

TINY = tp.Config(universes=1, particles=12, steps=6, iterations=0)


def test_equal_budget_gives_waves_fewer_iterations_and_rows_are_complete():
    rows = wvp.run(seeds=2, budget=2000, cfg=TINY, progress=False)
    assert len(rows) == 2 * len(wvp.METHODS)
    by = {(r["method"], r["seed"]): r for r in rows}
    particles, waves = by[("particles", 0)], by[("waves 4,4", 0)]
    assert particles["iterations"] == 2000 // (12 * 6)
    assert waves["iterations"] == 2000 // (12 * 6 * 4)
    assert abs(particles["node_steps"] - waves["node_steps"]) <= 12 * 6 * 4
    for r in rows:
        assert r["success"] == (r["loss_particle"] < wvp.success_threshold(2))
    assert "success" in wvp.summary(rows)


def test_time_budget_runs_until_the_clock():
    (row,) = wvp.run(seeds=1, cfg=TINY, methods=[wvp.METHODS[0]], progress=False, seconds=0.3)
    assert row["seconds"] >= 0.3 and row["iterations"] >= 1


def test_threshold_is_one_sigma_from_the_path():
    # -log N(l; x, 1) at |x - l| = 1 in d = 2
    import math

    assert abs(wvp.success_threshold(2) - (math.log(2 * math.pi) + 0.5)) < 1e-12
