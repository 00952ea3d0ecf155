import math

import torch

from sparse_universe.experiments import string_wave as sw

SMALL = sw.Config(particles=241, width=6.0)


def test_uniform_string_wave_speed_is_sqrt_tension_over_density():
    result = sw.measure(SMALL, tapered=False)
    speed = sw.fit_speed(result["times"], result["peak"])
    expected = math.sqrt(sw.tension(SMALL) / (SMALL.mass / SMALL.spacing))
    assert result["times"].numel() > 20
    assert abs(speed / expected - 1) < 0.02, (speed, expected)


def test_whip_speeds_up_toward_the_light_tip_as_predicted():
    rows = sw.local_speeds(SMALL, sw.measure(SMALL, tapered=True), bins=4)
    assert len(rows) == 4
    measured = [r["measured"] for r in rows]
    assert all(b > a for a, b in zip(measured, measured[1:]))  # faster and faster
    for r in rows:
        assert abs(r["measured"] / r["predicted"] - 1) < 0.05, r


def test_peak_tracking_refines_between_particles():
    x = torch.arange(10, dtype=torch.float64)
    y = torch.exp(-0.5 * (x - 4.3) ** 2)[None]
    assert abs(float(sw.track_peak(x, y, 0.0)[0]) - 4.3) < 0.1


def test_cli_writes_csv_and_png(tmp_path):
    rows = sw.main(["--particles", "161", "--width", "5", "--out", str(tmp_path)])
    assert {r["case"] for r in rows} == {"uniform", "whip"}
    assert (tmp_path / "string_wave.png").stat().st_size > 10_000
