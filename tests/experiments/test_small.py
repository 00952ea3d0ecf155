import pytest

pytest.importorskip("vesin")

from sparse_universe.experiments import small  # noqa: E402


def test_molecules_are_compact_batches_of_10_to_100_atoms():
    pos, batch = small.molecules(20, seed=2)
    sizes = batch.bincount()
    assert sizes.numel() == 20 and int(sizes.min()) >= 10 and int(sizes.max()) <= 100
    assert float(pos.abs().max()) < 20.0


def test_every_method_finds_the_same_edges_and_is_timed():
    rows = small.run(repeats=1, only=("molecules-64",), progress=False)
    assert [r.method for r in rows] == ["engine", "capacity", "torch-cluster", "vesin", "kdtree"]
    assert len({r.pairs for r in rows}) == 1 and rows[0].pairs > 0
    assert rows[0].ratio_to_engine == 1.0 and "molecules-64" in small.table(rows)
