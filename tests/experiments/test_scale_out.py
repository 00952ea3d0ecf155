import pytest

from sparse_universe.experiments import scale_out


@pytest.mark.slow
def test_scale_out_times_every_workload_and_splits_the_time(tmp_path):
    """1 and 2 gloo processes, weak and strong: parts add up, the 1-process rows are the efficiency baseline."""
    rows = scale_out.main(["--procs", "1,2", "--per-proc", "300", "--total", "500", "--steps", "1",
                           "--out", str(tmp_path)])
    assert {(r.workload, r.mode, r.procs) for r in rows} == {(w, m, p) for w in scale_out.WORKLOADS
                                                             for m in ("weak", "strong") for p in (1, 2)}
    for r in rows:
        assert r.seconds > 0 and r.exchange >= 0 and r.migration >= 0
        assert abs(r.compute + r.exchange + r.migration - r.seconds) < 1e-9
        if r.procs == 1:
            assert r.efficiency == pytest.approx(1.0)
    weak = {r.procs: r.particles for r in rows if r.mode == "weak"}
    assert weak[2] > weak[1] and {r.particles for r in rows if r.mode == "strong"} == {512}  # 8^3: rounded up
    assert (tmp_path / "scale_out_cpu.csv").read_text().count("\n") == len(rows) + 1
    assert (tmp_path / "scale_out_cpu.png").stat().st_size > 0


def test_bad_process_counts_are_named(capsys):
    with pytest.raises(SystemExit):
        scale_out.main(["--procs", "1,two"])
    assert "comma-separated process counts" in capsys.readouterr().err
