import pytest

pytest.importorskip("vesin")
pytest.importorskip("matscipy")

from sparse_universe.experiments import crystals  # noqa: E402


def test_batch_is_triclinic_crystals_of_8_to_200_atoms():
    batch = crystals.crystal_batch(count=12, seed=3)
    assert len(batch) == 12 and all(8 <= len(a) <= 200 for a in batch)
    assert any(abs(a.cell[0, 1]) > 1e-3 for a in batch)  # strained out of the prototypes' cells


def test_every_method_finds_the_same_pairs_and_is_timed():
    rows = crystals.run(repeats=1, only=("batch-64",), progress=False)
    assert [r.method for r in rows] == ["engine", "vesin", "matscipy", "ase"]
    assert len({r.pairs for r in rows}) == 1 and rows[0].pairs > 0
    assert rows[0].ratio_to_engine == 1.0 and all(r.median_s > 0 for r in rows)
    assert "batch-64" in crystals.table(rows)
