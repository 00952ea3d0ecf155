"""Periodic cells against oracles no one here wrote: ASE's neighbour list (all) and vesin (a subset)."""

import importlib
import itertools

import numpy as np
import pytest
import torch

from sparse_universe import edge_vectors, radius, radius_graph

ase = pytest.importorskip("ase")
from ase import Atoms  # noqa: E402
from ase.build import bulk, fcc111, molecule  # noqa: E402
from ase.neighborlist import neighbor_list  # noqa: E402

BACKENDS = ["dense", "hash", "examples", "cluster"]


def structures():
    """Real structures, each with a name (the id of its test)."""
    rng = np.random.default_rng(7)
    out = {
        "fcc-cubic": bulk("Cu", "fcc", a=3.6, cubic=True),
        "fcc-primitive": bulk("Cu", "fcc", a=3.6),
        "bcc": bulk("Fe", "bcc", a=2.87),
        "hcp": bulk("Mg", "hcp", a=3.21, c=5.21),
        "diamond-primitive": bulk("C", "diamond", a=3.57),
        "slab": fcc111("Al", size=(2, 2, 3), vacuum=5.0),  # pbc (T, T, F)
        "chain": Atoms("H4", positions=[[0, 0, 0.7 * k] for k in range(4)], cell=[0, 0, 2.8], pbc=[False, False, True]),
        "molecule-in-box": molecule("CH3CH2OH", cell=np.eye(3) * 12.0, pbc=True),
        "tiny-cell": Atoms("He", positions=[[0.1, 0.2, 0.3]], cell=np.eye(3) * 1.3, pbc=True),
        "fcc-supercell": bulk("Cu", "fcc", a=3.61, cubic=True) * (6, 6, 6),  # few images at small r: half list
    }
    for k in range(3):  # random skewed triclinic cells, the last one left-handed
        cell = np.eye(3) * rng.uniform(2.5, 4.0, 3) + rng.uniform(-1.2, 1.2, (3, 3))
        if k == 2:
            cell[[0, 1]] = cell[[1, 0]]
        atoms = Atoms("X" * 5, scaled_positions=rng.uniform(size=(5, 3)), cell=cell, pbc=True)
        assert (np.linalg.det(cell) < 0) == (k == 2)
        out[f"triclinic-{k}"] = atoms
    return out


STRUCTURES = structures()


def ase_triples(atoms, r):
    i, j, S, d = neighbor_list("ijSd", atoms, r)
    order = np.lexsort([S[:, 2], S[:, 1], S[:, 0], j, i])
    return i[order], j[order], S[order], d[order]


def ours(atoms, r, backend="auto", dtype=torch.float64):
    pos = torch.tensor(atoms.positions, dtype=dtype)
    cell = torch.tensor(np.array(atoms.cell), dtype=dtype)
    edge_index, shifts = radius_graph(pos, r, cell=cell, pbc=torch.tensor(atoms.pbc), return_shifts=True,
                                      backend=backend)
    _, length = edge_vectors(pos, edge_index, shifts=shifts, cell=cell)
    return edge_index, shifts, length


def assert_matches_ase(atoms, r, backend, dtype=torch.float64):
    i, j, S, d = ase_triples(atoms, r)
    edge_index, shifts, length = ours(atoms, r, backend, dtype)
    # sorted by target, source, shift: exactly ASE's triples after a lexsort
    assert np.array_equal(edge_index[1].numpy(), i) and np.array_equal(edge_index[0].numpy(), j)
    assert np.array_equal(shifts.numpy(), S)
    np.testing.assert_allclose(length.double().numpy(), d, rtol=1e-12 if dtype == torch.float64 else 1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_structures_match_ase(name, backend):
    atoms = STRUCTURES[name]
    shortest = min(ase_triples(atoms, 8.0)[3].min(initial=8.0), 8.0)
    # ASE drops pairs at exactly the cut-off (d < r); ours keeps them (d <= r): no cut-off here is a distance
    for r in (0.9 * shortest, shortest * 1.0001, 3.0123, 5.0123, 2.5 * max(atoms.cell.lengths()) + 0.0123):
        assert_matches_ase(atoms, min(r, 9.0123), backend)


@pytest.mark.parametrize("pbc", list(itertools.product([False, True], repeat=3)))
@pytest.mark.parametrize("name", ["fcc-primitive", "triclinic-2", "hcp"])
def test_every_pbc_combination(name, pbc):
    atoms = STRUCTURES[name].copy()
    atoms.pbc = pbc
    for backend in ("hash", "dense"):
        assert_matches_ase(atoms, 4.5, backend)


def test_float32_matches_ase():
    assert_matches_ase(STRUCTURES["triclinic-0"], 5.0, "hash", torch.float32)


def test_positions_outside_the_cell_give_shifts_relative_to_them():
    atoms = STRUCTURES["triclinic-1"].copy()
    inside = ours(atoms, 5.0)
    atoms.positions += np.array([[2, -1, 0], [0, 0, 3], [-4, 1, 1], [0, 0, 0], [1, 1, 1]]) @ np.array(atoms.cell)
    assert_matches_ase(atoms, 5.0, "hash")
    outside = ours(atoms, 5.0)
    torch.testing.assert_close(torch.sort(outside[2]).values, torch.sort(inside[2]).values)


def test_vesin_agrees_on_a_subset():
    vesin = pytest.importorskip("vesin")
    for name in ("fcc-cubic", "diamond-primitive", "triclinic-0", "tiny-cell"):
        atoms = STRUCTURES[name]
        calc = vesin.NeighborList(cutoff=4.0, full_list=True)
        i, j, S = calc.compute(points=atoms.positions, box=np.array(atoms.cell), periodic=True, quantities="ijS")
        expected = sorted(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))
        edge_index, shifts, _ = ours(atoms, 4.0, "hash")
        assert sorted(zip(edge_index[1].tolist(), edge_index[0].tolist(), map(tuple, shifts.tolist()))) == expected


@pytest.mark.parametrize("r, count", [(0.9, 0), (1.0, 6), (1.1, 6), (1.5, 18), (1.8, 26), (2.1, 32)])
def test_analytic_counts_of_a_one_atom_cubic_cell(r, count):
    edge_index = radius_graph(torch.zeros(1, 3, dtype=torch.float64), r, cell=torch.eye(3, dtype=torch.float64))
    assert edge_index.size(1) == count  # 6 faces (at exactly r = 1 too), + 12 edges, + 8 corners, + 6 at 2


def test_counts_per_atom_survive_a_supercell():
    atoms = STRUCTURES["triclinic-0"]
    edge_index, _, _ = ours(atoms, 6.0)
    big = atoms * (2, 3, 1)
    big_edges, _, _ = ours(big, 6.0)
    small_counts = torch.bincount(edge_index[1], minlength=len(atoms))
    big_counts = torch.bincount(big_edges[1], minlength=len(big))
    assert torch.equal(big_counts, small_counts.repeat(6))


def test_translation_and_rotation_of_positions_and_cell_together():
    atoms = STRUCTURES["hcp"]
    edge_index, shifts, length = ours(atoms, 6.0)
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    moved = atoms.copy()
    moved.set_cell(np.array(atoms.cell) @ q.T)
    moved.positions = atoms.positions @ q.T + np.array([0.3, -7.0, 2.2])
    edge_index2, shifts2, length2 = ours(moved, 6.0)
    assert torch.equal(edge_index, edge_index2) and torch.equal(shifts, shifts2)
    torch.testing.assert_close(length, length2)


def test_batch_of_different_crystals_equals_each_alone():
    names = ["fcc-primitive", "slab", "triclinic-2", "tiny-cell", "chain"]
    parts = [STRUCTURES[n] for n in names]
    pos = torch.cat([torch.tensor(a.positions) for a in parts])
    cell = torch.stack([torch.tensor(np.array(a.cell)) for a in parts])
    pbc = torch.tensor(np.array([a.pbc for a in parts]))
    batch = torch.cat([torch.full((len(a),), b) for b, a in enumerate(parts)])
    perm = torch.randperm(len(batch), generator=torch.Generator().manual_seed(0))  # batch ids in any order
    edge_index, shifts = radius_graph(pos[perm], 4.0, batch[perm], cell=cell, pbc=pbc, return_shifts=True)
    got = sorted(zip(perm[edge_index[1]].tolist(), perm[edge_index[0]].tolist(), map(tuple, shifts.tolist())))
    expected, offset = [], 0
    for atoms in parts:
        i, j, S, _ = ase_triples(atoms, 4.0)
        expected += [(a + offset, b + offset, tuple(s)) for a, b, s in zip(i.tolist(), j.tolist(), S.tolist())]
        offset += len(atoms)
    assert got == sorted(expected)
    _, length = edge_vectors(pos[perm], edge_index, shifts=shifts, cell=cell, batch=batch[perm])
    assert bool((length <= 4.0).all())


def test_edges_are_sorted_by_target_source_shift():
    edge_index, shifts, _ = ours(STRUCTURES["tiny-cell"], 3.0, "hash")
    rows = list(zip(edge_index[1].tolist(), edge_index[0].tolist(), map(tuple, shifts.tolist())))
    assert rows == sorted(rows) and len(set(rows)) == len(rows)


def test_backends_return_identical_tensors_on_a_batch():
    g = torch.Generator().manual_seed(1)
    cell = torch.eye(3) * 2.0 + 0.4 * torch.rand(8, 3, 3, generator=g)
    frac = torch.rand(8, 6, 3, generator=g)
    pos = torch.einsum("bnd,bde->bne", frac, cell).reshape(-1, 3)
    batch = torch.arange(8).repeat_interleave(6)
    results = [radius_graph(pos, 3.2, batch, cell=cell, return_shifts=True, backend=b) for b in BACKENDS]
    for edge_index, shifts in results[1:]:
        assert torch.equal(edge_index, results[0][0]) and torch.equal(shifts, results[0][1])


def test_edges_sorted_through_the_rank_table_equal_the_packed_keys(monkeypatch):
    from sparse_universe.neighbors import cells

    g = torch.Generator().manual_seed(2)
    cell = torch.eye(3) * 2.0 + 0.4 * torch.rand(4, 3, 3, generator=g)  # cut-off over a cell length: many shifts
    pos = torch.einsum("bnd,bde->bne", torch.rand(4, 5, 3, generator=g), cell).reshape(-1, 3)
    batch = torch.arange(4).repeat_interleave(5)
    packed = radius_graph(pos, 3.2, batch, cell=cell, return_shifts=True)
    monkeypatch.setattr(cells, "KEY_BITS", 0)  # as for keys too wide for int64
    ranked = radius_graph(pos, 3.2, batch, cell=cell, return_shifts=True)
    assert torch.equal(ranked[0], packed[0]) and torch.equal(ranked[1], packed[1])
    assert packed[1].abs().max() >= 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_search_over_the_positive_images_gives_mirrors_and_self_images(monkeypatch, backend):
    radius_module = importlib.import_module("sparse_universe.neighbors.radius")  # the name is also a function
    rng = np.random.default_rng(5)
    # one short periodic axis: every atom has one image at +1 within reach (and one at -1, left out)
    atoms = Atoms("X" * 60, scaled_positions=rng.uniform(0.01, 0.99, (60, 3)),
                  cell=[[12.0, 0, 0], [1.0, 12.0, 0], [0, 0, 1.5]], pbc=[False, False, True])
    r = 1.5 * (1 + 1e-9)  # over one period: each atom neighbours its own images at S = +-c
    half_searches = []
    find_pairs = radius_module.find_pairs
    monkeypatch.setattr(radius_module, "find_pairs", lambda pos, *a: half_searches.append(len(pos)) or
                        find_pairs(pos, *a))
    assert_matches_ase(atoms, r, backend)
    assert half_searches == [120]  # the particles and their images at +c: the half search ran
    edge_index, shifts, _ = ours(atoms, r, backend)
    own = edge_index[0] == edge_index[1]
    assert own.sum() == 120 and shifts[own, 2].abs().eq(1).all() and shifts[own, :2].eq(0).all()


@pytest.mark.parametrize("threads", [2, 3])
def test_keys_sorted_in_parts_on_threads_equal_one_sort(monkeypatch, threads):
    from sparse_universe.neighbors import sorting

    g = torch.Generator().manual_seed(3)
    crystal = torch.tensor(STRUCTURES["fcc-supercell"].positions)  # few images: the half search
    crystal_cell = torch.tensor(np.array(STRUCTURES["fcc-supercell"].cell))
    cell = torch.eye(3, dtype=torch.float64) * 2.0 + 0.4 * torch.rand(2, 3, 3, generator=g, dtype=torch.float64)
    frac = torch.rand(2, 7, 3, generator=g, dtype=torch.float64) * 3 - 1  # some outside the cell: unwrapped
    pos = torch.einsum("bnd,bde->bne", frac, cell).reshape(-1, 3)
    batch = torch.arange(2).repeat_interleave(7)
    cloud = torch.rand(300, 3, generator=g, dtype=torch.float64)
    calls = [
        lambda: radius_graph(crystal, 3.0, cell=crystal_cell, return_shifts=True, loop=True),
        lambda: radius_graph(pos, 3.2, batch, cell=cell, return_shifts=True),
        lambda: radius_graph(pos[:7], 2.1, cell=cell[0], return_shifts=True, backend="hash"),
        lambda: radius(cloud[:50], pos, 3.0, torch.zeros(50, dtype=torch.long), batch, cell=cell[:1].expand(2, 3, 3),
                       return_shifts=True),
        lambda: (radius_graph(cloud, 0.2, loop=True), radius_graph(cloud, 0.5, box=torch.ones(3))),
    ]
    one = [call() for call in calls]
    monkeypatch.setattr(sorting, "PARALLEL_SORT", 0)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        parted = [call() for call in calls]
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, parted):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def lj_energy(pos, cell, r=5.0, sigma=2.3, epsilon=0.4):
    edge_index, shifts = radius_graph(pos.detach(), r, cell=cell.detach(), return_shifts=True)
    _, dist = edge_vectors(pos, edge_index, shifts=shifts, cell=cell)
    x = (sigma / dist) ** 6
    return 0.5 * (4 * epsilon * (x * x - x)).sum()  # each pair twice


def test_forces_and_stress_by_the_strain_trick_match_finite_differences():
    atoms = bulk("Ar", "fcc", a=5.26) * (2, 1, 1)
    atoms.rattle(0.1, seed=2)
    pos, cell = torch.tensor(atoms.positions), torch.tensor(np.array(atoms.cell))
    strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    p = pos.clone().requires_grad_(True)
    deform = torch.eye(3, dtype=torch.float64) + strain
    energy = lj_energy(p @ deform, cell @ deform)
    dE_dpos, dE_dstrain = torch.autograd.grad(energy, (p, strain))
    forces, stress = -dE_dpos, dE_dstrain / abs(torch.det(cell))  # stress: the strain derivative per volume
    h = 1e-5
    for a, k in [(0, 0), (1, 2), (1, 1)]:
        plus, minus = pos.clone(), pos.clone()
        plus[a, k] += h
        minus[a, k] -= h
        numeric = -(lj_energy(plus, cell) - lj_energy(minus, cell)) / (2 * h)
        assert float(forces[a, k]) == pytest.approx(float(numeric), rel=1e-6, abs=1e-9)
    for a, b in [(0, 0), (0, 1), (2, 2)]:
        e = torch.zeros(3, 3, dtype=torch.float64)
        e[a, b] = h
        up = lj_energy(pos @ (torch.eye(3, dtype=torch.float64) + e), cell @ (torch.eye(3, dtype=torch.float64) + e))
        down = lj_energy(pos @ (torch.eye(3, dtype=torch.float64) - e), cell @ (torch.eye(3, dtype=torch.float64) - e))
        numeric = (up - down) / (2 * h) / abs(float(torch.det(cell)))
        assert float(stress[a, b]) == pytest.approx(float(numeric), rel=1e-6, abs=1e-9)


def test_edge_vectors_gradcheck_in_positions_and_cell():
    atoms = STRUCTURES["triclinic-1"]
    pos = torch.tensor(atoms.positions, requires_grad=True)
    cell = torch.tensor(np.array(atoms.cell), requires_grad=True)
    edge_index, shifts = radius_graph(pos.detach(), 3.5, cell=cell.detach(), return_shifts=True)
    assert torch.autograd.gradcheck(lambda p, c: edge_vectors(p, edge_index, shifts=shifts, cell=c)[0], (pos, cell))


@pytest.mark.parametrize("cell, pbc, words", [
    (torch.eye(2), None, ["'cell'", "(3, 3)", "(2, 2)"]),
    (torch.tensor([[1.0, 0, 0], [0, float("nan"), 0], [0, 0, 1]]), None, ["'cell'", "finite"]),
    (torch.tensor([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1]]), None, ["linearly independent", "2 dimensions"]),
    (torch.eye(3), torch.tensor([1, 0, 1]), ["'pbc'", "bool"]),
    (torch.eye(3).expand(2, 3, 3), torch.ones(3, 3, dtype=torch.bool), ["'cell' and 'pbc'", "2 and 3"]),
])
def test_bad_cells_are_named(cell, pbc, words):
    with pytest.raises((ValueError, TypeError)) as info:
        radius_graph(torch.rand(4, 3), 1.0, cell=cell, pbc=pbc)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_zero_lattice_vector_on_an_open_axis_is_allowed():
    atoms = STRUCTURES["slab"].copy()
    cell = np.array(atoms.cell)
    cell[2] = 0.0
    atoms.set_cell(cell)
    assert_matches_ase(atoms, 4.0, "hash")


def test_box_and_cell_relate_below_half_a_side():
    pos = torch.rand(200, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 4
    box = torch.tensor([4.0, 4.0, 4.0], dtype=torch.float64)
    assert torch.equal(radius_graph(pos, 1.3, box=box), radius_graph(pos, 1.3, cell=torch.diag(box)))
    with pytest.raises(ValueError, match="'cell'"):
        radius_graph(pos, 1.3, box=box, return_shifts=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bipartite_radius_matches_brute_force(backend):
    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(300, 3, generator=g), torch.rand(120, 3, generator=g)
    bx, by = torch.randint(0, 3, (300,), generator=g), torch.randint(0, 3, (120,), generator=g)
    y[:5] = x[:5]  # a query on a source is its neighbour
    by[:5] = bx[:5]
    edges = radius(x, y, 0.2, bx, by, backend=backend)
    close = ((y[:, None].double() - x[None].double()) ** 2).sum(-1) <= 0.2 * 0.2
    close &= by[:, None] == bx[None]
    assert torch.equal(edges, close.nonzero().t())  # nonzero() is sorted by query, then source


def test_bipartite_radius_in_a_cell_matches_explicit_images():
    g = torch.Generator().manual_seed(5)
    cell = torch.tensor([[2.0, 0.0, 0.0], [0.7, 1.8, 0.0], [0.2, -0.3, 2.1]], dtype=torch.float64)
    x = torch.rand(20, 3, generator=g, dtype=torch.float64) @ cell
    y = torch.rand(15, 3, generator=g, dtype=torch.float64) * 3 - 0.5  # queries anywhere
    edges, shifts = radius(x, y, 2.5, cell=cell, return_shifts=True)
    expected = []
    for s in itertools.product(range(-4, 5), repeat=3):
        image = x + torch.tensor(s, dtype=torch.float64) @ cell
        close = ((image[None] - y[:, None]) ** 2).sum(-1) <= 2.5 * 2.5
        expected += [(i, j, s) for i, j in close.nonzero().tolist()]
    assert list(zip(edges[0].tolist(), edges[1].tolist(), map(tuple, shifts.tolist()))) == sorted(expected)


@pytest.mark.parametrize("name", ["tiny-cell", "triclinic-0", "chain"])
def test_half_list_and_its_mirror_are_the_full_list(name):
    atoms = STRUCTURES[name]
    pos, cell = torch.tensor(atoms.positions), torch.tensor(np.array(atoms.cell))
    full = radius_graph(pos, 4.0, cell=cell, pbc=torch.tensor(atoms.pbc), return_shifts=True)
    half = radius_graph(pos, 4.0, cell=cell, pbc=torch.tensor(atoms.pbc), return_shifts=True, half=True)
    as_set = lambda e, s: set(zip(e[1].tolist(), e[0].tolist(), map(tuple, s.tolist())))  # noqa: E731
    kept = as_set(*half)
    mirrored = {(j, i, tuple(-x for x in s)) for i, j, s in kept}
    assert not kept & mirrored and kept | mirrored == as_set(*full)
    assert all(i < j or (i == j and s > (0,) * 3) for i, j, s in kept)
    plain = radius_graph(pos[:, :2].contiguous(), 1.5, half=True)  # without a cell: i < j
    assert bool((plain[1] < plain[0]).all()) and 2 * plain.size(1) == radius_graph(pos[:, :2].contiguous(), 1.5).size(1)


@pytest.mark.parametrize("backend", BACKENDS + ["auto"])
@pytest.mark.parametrize("outside", [False, True])
def test_cell_and_positions_that_require_grad_give_the_detached_graph(backend, outside):
    g = torch.Generator().manual_seed(5)
    cell = torch.eye(3, dtype=torch.float64) * 2.5 + 0.3 * torch.rand(2, 3, 3, generator=g, dtype=torch.float64)
    frac = torch.rand(2, 7, 3, generator=g, dtype=torch.float64) + (1.5 if outside else 0.0)
    pos = torch.einsum("bnd,bde->bne", frac, cell).reshape(-1, 3)
    batch = torch.arange(2).repeat_interleave(7)
    expected = radius_graph(pos, 3.0, batch, cell=cell, return_shifts=True, backend=backend)
    got = radius_graph(pos.requires_grad_(True), 3.0, batch, cell=cell.requires_grad_(True), return_shifts=True,
                       backend=backend)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert expected[0].size(1) > 0
