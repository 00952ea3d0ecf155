from sparse_universe.experiments import bench_step


def test_bench_step_reports_shares_and_writes_csv(tmp_path):
    rows = bench_step.main(["--sizes", "500", "2000", "--repeats", "1", "--out", str(tmp_path)])
    assert [(r.surrogate, r.n) for r in rows] == [("radius", 500), ("radius", 2000), ("None", 500), ("None", 2000)]
    for r in rows:
        assert 0 < r.graph_s < r.median_s and 0 < r.graph_share < 1
    assert (tmp_path / "bench_step_cpu.csv").read_text().count("\n") == 5


def test_bench_waves_compares_equal_node_counts(tmp_path):
    (row,) = bench_step.main(["--waves", "3", "2", "--sizes", "300", "--repeats", "1", "--out", str(tmp_path)])
    assert row["nodes"] == 900 and row["wave_s"] > 0 and row["particle_s"] > 0
    assert row["ratio"] == row["wave_s"] / row["particle_s"]
    assert (tmp_path / "bench_waves_cpu.csv").exists()
