from sparse_universe.experiments import lj_gas


def test_energy_rows_report_drift_and_momentum_for_each_integrator(tmp_path):
    rows = lj_gas.main(["--particles", "125", "--steps", "100", "--integrators", "euler", "verlet",
                        "--out", str(tmp_path)])
    verlet = [r for r in rows if r["integrator"] == "verlet"]
    euler = [r for r in rows if r["integrator"] == "euler"]
    assert [r["step"] for r in verlet] == list(range(0, 101, 10))
    assert verlet[0]["drift"] == 0 and max(r["drift"] for r in verlet) < 1e-3
    assert max(r["drift"] for r in euler) > 10 * max(r["drift"] for r in verlet)
    assert max(r["momentum"] for r in rows) < 1e-10
    assert (tmp_path / "lj_energy.png").exists()


def test_bench_times_a_step_and_the_graph():
    row = lj_gas.bench(2000, repeats=1)
    assert row["n"] == 2197 and row["edges"] > 0  # 13^3, rounded up to a cube
    assert row["verlet_step_s"] > 0 and row["graph_s"] > 0
