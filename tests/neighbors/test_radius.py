import math

import pytest
import torch

from sparse_universe import NeighborOverflowError, radius_graph

from .oracle import edge_set, image_brute_force, kdtree_edges, random_cloud

BACKENDS = ["hash", "examples", "cluster", "dense"]


def _radius_for(n, d, neighbours=10.0, side=8.0):
    """Radius giving about ``neighbours`` per point in a cube of ``side``."""
    unit_ball = math.pi ** (d / 2) / math.gamma(d / 2 + 1)
    return (neighbours * side**d / (n * unit_ball)) ** (1 / d)


def _is_sorted(edge_index):
    key = edge_index[1] * (edge_index.max() + 1) + edge_index[0] if edge_index.numel() else edge_index[0]
    return bool((key[1:] > key[:-1]).all())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize("kind", ["uniform", "clustered"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_kdtree(backend, d, kind, dtype, device):
    g = torch.Generator().manual_seed(d * 7 + len(kind))
    pos = random_cloud(600, d, kind, g, dtype).to(device)
    r = _radius_for(600, d)
    edge_index = radius_graph(pos, r, backend=backend)
    assert edge_index.dtype == torch.long and edge_index.device == pos.device
    assert edge_set(edge_index) == kdtree_edges(pos, r)
    assert _is_sorted(edge_index)


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_backends_identical_tensors(d, device):
    g = torch.Generator().manual_seed(d)
    pos = random_cloud(1500, d, "clustered", g, torch.float32).to(device)
    r = _radius_for(1500, d, neighbours=20)
    results = [radius_graph(pos, r, backend=b) for b in BACKENDS + ["auto"]]
    for other in results[1:]:
        assert torch.equal(results[0], other)
    assert torch.equal(radius_graph(pos, r, backend="hash"), results[0])  # deterministic


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lattice_points_exactly_at_r(backend, d, dtype):
    # Dyadic coordinates make every distance exact: neighbours at exactly r count.
    axes = [torch.arange(-3, 4, dtype=dtype) * 0.25] * d
    pos = torch.cartesian_prod(*axes).reshape(-1, d)
    edge_index = radius_graph(pos, 0.25, backend=backend)
    degree = torch.bincount(edge_index[1], minlength=pos.size(0))
    interior = (pos.abs() < 0.75).all(1)
    assert bool((degree[interior] == 2 * d).all())  # the 2d axis neighbours, no diagonals
    assert edge_set(edge_index) == kdtree_edges(pos, 0.25)
    diagonal = radius_graph(pos, 0.25 * math.sqrt(2) * (1 + 1e-6), backend=backend)
    assert bool((torch.bincount(diagonal[1])[interior] == 2 * d + 2 * d * (d - 1)).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_points_at_exactly_r_and_just_beyond(backend):
    pos = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5000001]])
    edge_index = radius_graph(pos, 0.5, backend=backend)
    assert edge_set(edge_index) == {(0, 1), (1, 0)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_coincident_points_are_neighbours(backend):
    pos = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [5.0, 5.0]])
    edge_index = radius_graph(pos, 0.1, backend=backend)
    assert edge_set(edge_index) == {(a, b) for a in range(3) for b in range(3) if a != b}


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_isolation_unsorted_with_skipped_id(backend, device):
    g = torch.Generator().manual_seed(3)
    pos = random_cloud(900, 3, "uniform", g).to(device)
    batch = torch.tensor([0, 2, 5], device=device)[torch.randint(0, 3, (900,), generator=g).to(device)]
    r = _radius_for(300, 3)
    edge_index = radius_graph(pos, r, batch, backend=backend)
    assert bool((batch[edge_index[0]] == batch[edge_index[1]]).all())
    assert edge_set(edge_index) == kdtree_edges(pos, r, batch)
    # The same points in one example would have cross edges: isolation is real.
    assert len(kdtree_edges(pos, r)) > len(edge_set(edge_index))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_periodic_matches_kdtree_boxsize(backend, d, device):
    g = torch.Generator().manual_seed(10 + d)
    box = [4.0, 3.0, 5.0][:d]
    # Positions outside the box (negative and beyond) are wrapped.
    pos = (torch.rand(500, d, generator=g, dtype=torch.float64) * 3 - 1) * torch.tensor(box, dtype=torch.float64)
    r = 0.9 if d > 1 else 0.05
    edge_index = radius_graph(pos.to(device), r, box=box, backend=backend)
    assert edge_set(edge_index) == kdtree_edges(pos, r, box=box)
    assert _is_sorted(edge_index)


@pytest.mark.parametrize("backend", BACKENDS)
def test_partially_periodic_matches_image_brute_force(backend):
    g = torch.Generator().manual_seed(5)
    box, periodic = [3.0, 2.0, 2.5], [True, False, True]
    pos = torch.rand(300, 3, generator=g, dtype=torch.float64) * torch.tensor(box, dtype=torch.float64)
    pos[:, 1] = pos[:, 1] * 3 - 2  # the open axis extends beyond the "box"
    edge_index = radius_graph(pos, 0.7, box=box, periodic=periodic, backend=backend)
    assert edge_set(edge_index) == image_brute_force(pos, 0.7, box, periodic)


@pytest.mark.parametrize("backend", BACKENDS)
def test_periodic_radius_of_exactly_half_the_box(backend):
    # Two images at exactly r: still one edge each way.
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    edge_index = radius_graph(pos, 1.0, box=[2.0, 2.0], backend=backend)
    assert edge_index.tolist() == [[1, 0], [0, 1]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_point(backend, n, device):
    pos = torch.zeros(n, 3, device=device)
    edge_index = radius_graph(pos, 1.0, backend=backend)
    assert edge_index.shape == (2, 0) and edge_index.dtype == torch.long
    assert edge_index.device == pos.device
    looped = radius_graph(pos, 1.0, loop=True, backend=backend)
    assert looped.tolist() == [list(range(n)), list(range(n))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_loop_and_flow(backend):
    g = torch.Generator().manual_seed(0)
    pos = random_cloud(200, 2, "uniform", g)
    plain = radius_graph(pos, 1.0, backend=backend)
    looped = radius_graph(pos, 1.0, loop=True, backend=backend)
    assert edge_set(looped) == edge_set(plain) | {(i, i) for i in range(200)}
    assert _is_sorted(looped)
    flipped = radius_graph(pos, 1.0, backend=backend, flow="target_to_source")
    assert torch.equal(flipped, plain.flip(0))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_tested_in_float32(dtype):
    pos = torch.tensor([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0]], dtype=dtype)
    assert edge_set(radius_graph(pos, 0.5)) == {(0, 1), (1, 0)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_overflow_raises_with_largest_degree(backend):
    pos = torch.cat([torch.zeros(1, 2), torch.rand(40, 2) * 0.1, torch.tensor([[9.0, 9.0]])])
    degree = torch.bincount(radius_graph(pos, 0.5)[1])
    with pytest.raises(NeighborOverflowError) as info:
        radius_graph(pos, 0.5, max_num_neighbors=10, backend=backend)
    assert info.value.max_degree == int(degree.max()) == 40
    assert "40 neighbours" in str(info.value)
    assert radius_graph(pos, 0.5, max_num_neighbors=40, backend=backend).size(1) == 41 * 40


@pytest.mark.parametrize("backend", BACKENDS)
def test_overflow_nearest_keeps_the_nearest(backend):
    g = torch.Generator().manual_seed(1)
    pos = torch.rand(300, 2, generator=g, dtype=torch.float64)
    full = radius_graph(pos, 0.2, backend=backend)
    kept = radius_graph(pos, 0.2, max_num_neighbors=5, on_overflow="nearest", backend=backend)
    assert edge_set(kept) <= edge_set(full)
    assert _is_sorted(kept)
    for i in range(0, 300, 37):
        src = full[0, full[1] == i]
        dist = (pos[src] - pos[i]).norm(dim=1)
        expected = set(src[torch.argsort(dist, stable=True)[:5]].tolist())
        assert set(kept[0, kept[1] == i].tolist()) == expected


def test_cluster_backend_is_not_truncated_at_its_default_cap():
    # 200 points in a tiny ball: torch-cluster's default cap of 32 would drop edges.
    g = torch.Generator().manual_seed(2)
    pos = torch.rand(200, 3, generator=g) * 0.01
    edge_index = radius_graph(pos, 1.0, backend="cluster")
    assert edge_index.size(1) == 200 * 199


def test_hash_handles_extremely_sparse_coordinates():
    # Cells ~1e12 apart overflow a naive int64 cell index; gaps are compressed.
    g = torch.Generator().manual_seed(4)
    pos = torch.rand(400, 3, generator=g, dtype=torch.float64)
    pos[::2] += 1e12
    pos[::3, 1] -= 3e12
    assert torch.equal(radius_graph(pos, 0.2, backend="hash"), radius_graph(pos, 0.2, backend="dense"))
    assert edge_set(radius_graph(pos, 0.2, backend="hash")) == kdtree_edges(pos, 0.2)


@pytest.mark.parametrize("subdivisions", [1, 2, 3])
def test_points_exactly_on_cell_walls(subdivisions):
    from sparse_universe.neighbors.geometry import SLACK
    from sparse_universe.neighbors.hash import hash_pairs
    from sparse_universe.neighbors.radius import symmetrize

    # Walls of the hash grid sit at multiples of h (and h / s along the fast axis).
    r = 1.0
    h = r * (1 + SLACK)
    walls = torch.arange(0, 8, dtype=torch.float64) * h / subdivisions
    grid = torch.cartesian_prod(walls, walls[::subdivisions])
    pos = torch.cat([grid, grid + torch.tensor([r, 0.0], dtype=torch.float64), grid + 0.5 * h])
    group = torch.zeros(pos.size(0), dtype=torch.long)
    pairs = hash_pairs(pos, r, group, pos, subdivisions=subdivisions)
    found = symmetrize(pairs, pos.size(0), False, False, pos.device)
    assert torch.equal(found, radius_graph(pos, r, backend="dense"))


def test_extent_beyond_int64_cells_is_refused_by_hash_and_handled_by_auto():
    from sparse_universe.neighbors.hash import CellIndexOverflow

    pos = torch.tensor([[0.0, 0.0], [0.5, 0.0], [1e20, 0.0]], dtype=torch.float64)
    with pytest.raises(CellIndexOverflow, match="backend='cluster'"):
        radius_graph(pos, 1.0, backend="hash")
    big = torch.cat([pos, torch.rand(3000, 2, dtype=torch.float64)])  # above the dense cut-off: auto tries hash
    assert torch.equal(radius_graph(big, 0.05), radius_graph(big, 0.05, backend="dense"))


@pytest.mark.parametrize("dtype, r", [(torch.float32, 1e-30), (torch.float64, 1e-170)])
def test_coincident_points_are_neighbours_when_r_squared_underflows(dtype, r):
    # r * r rounds to 0 in the dtype; d2 = 0 <= 0 still holds (regression: cluster found nothing).
    g = torch.Generator().manual_seed(5)
    p = torch.rand(1500, 3, generator=g).to(dtype)
    pos = torch.cat([p, p[:10]])  # above the dense cut-off: auto tries hash, which refuses, then cluster
    expected = radius_graph(pos, r, backend="dense")
    assert expected.size(1) == 20
    assert torch.equal(radius_graph(pos, r), expected)
    assert torch.equal(radius_graph(pos, r, backend="cluster"), expected)


def test_huge_batch_ids_on_cluster():
    # torch-cluster sizes buffers by the largest id: ids are compressed first.
    g = torch.Generator().manual_seed(6)
    pos = torch.rand(300, 3, generator=g)
    batch = torch.zeros(300, dtype=torch.long)
    batch[150:] = 10**12
    assert torch.equal(radius_graph(pos, 0.3, batch, backend="cluster"), radius_graph(pos, 0.3, batch, backend="dense"))


@pytest.mark.parametrize("backend", ["auto", "dense", "hash", "examples", "cluster"])
def test_many_tiny_examples_single_atoms_and_skipped_ids(backend):
    # The block-diagonal brute force of small batches against the scipy oracle.
    g = torch.Generator().manual_seed(7)
    sizes = torch.randint(0, 5, (300,), generator=g)  # examples of 0 (skipped id) to 4 atoms
    batch = torch.repeat_interleave(torch.arange(300), sizes)
    batch = batch[torch.randperm(batch.numel(), generator=g)]  # any order
    pos = torch.rand(batch.numel(), 3, generator=g, dtype=torch.float64)
    edge_index = radius_graph(pos, 0.6, batch, backend=backend)
    assert edge_set(edge_index) == kdtree_edges(pos, 0.6, batch)
    assert torch.equal(edge_index, radius_graph(pos, 0.6, batch, backend="dense"))


def test_auto_picks_by_cost_brute_force_examples_as_cells_or_the_cell_list():
    from sparse_universe.experiments.small import molecules
    from sparse_universe.neighbors.radius import auto_backend

    pos, batch = molecules(64)
    assert auto_backend(pos.size(0), batch) == "examples"  # 64 molecules: every pair inside is worth testing
    assert auto_backend(300, torch.zeros(300, dtype=torch.long)) == "dense"
    assert auto_backend(5000, torch.zeros(5000, dtype=torch.long)) == "hash"
    assert auto_backend(5000, torch.arange(5000) // 2500) == "hash"  # two large examples
    assert torch.equal(radius_graph(pos, 5.0, batch), radius_graph(pos, 5.0, batch, backend="dense"))
