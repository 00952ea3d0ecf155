import pytest
import torch

from sparse_universe import NeighborList, radius_graph


@pytest.mark.parametrize("box", [None, [3.0, 3.0, 3.0]])
def test_random_walk_matches_fresh_graph_every_step(box, device):
    g = torch.Generator().manual_seed(0)
    pos = (torch.rand(400, 3, generator=g) * 3).to(device)
    nl = NeighborList(r=0.4, skin=0.2, box=box)
    for _ in range(200):
        pos = pos + 0.01 * torch.randn(pos.shape, generator=g).to(device)
        assert torch.equal(nl.update(pos), radius_graph(pos, 0.4, box=box))
    assert nl.num_updates == 200
    assert 1 < nl.num_builds < 200


def test_rebuilds_when_batch_or_size_changes():
    g = torch.Generator().manual_seed(1)
    pos = torch.rand(50, 2, generator=g)
    nl = NeighborList(r=0.3, skin=0.1)
    nl.update(pos)
    nl.update(pos)
    assert nl.num_builds == 1
    batch = torch.arange(50) % 2
    assert torch.equal(nl.update(pos, batch), radius_graph(pos, 0.3, batch))
    assert nl.num_builds == 2
    assert torch.equal(nl.update(pos[:40]), radius_graph(pos[:40], 0.3))
    assert nl.num_builds == 3


def test_jump_beyond_half_skin_forces_rebuild():
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    nl = NeighborList(r=0.5, skin=0.2)
    assert nl.update(pos).size(1) == 0
    moved = torch.tensor([[0.0, 0.0], [0.45, 0.0]])  # 0.55 > skin / 2: must rebuild
    assert nl.update(moved).tolist() == [[1, 0], [0, 1]]
    assert nl.num_builds == 2


def test_cap_and_flow_follow_radius_graph():
    g = torch.Generator().manual_seed(2)
    pos = torch.rand(100, 2, generator=g)
    nl = NeighborList(r=0.3, skin=0.1, max_num_neighbors=3, on_overflow="nearest", flow="target_to_source")
    expected = radius_graph(pos, 0.3, max_num_neighbors=3, on_overflow="nearest", flow="target_to_source")
    assert torch.equal(nl.update(pos), expected)


def test_crystal_trajectory_with_wrapping_and_a_changing_cell():
    g = torch.Generator().manual_seed(9)
    cell = torch.tensor([[3.0, 0.0, 0.0], [0.8, 2.9, 0.0], [0.3, -0.4, 3.2]], dtype=torch.float64)
    pos = torch.rand(12, 3, generator=g, dtype=torch.float64) @ cell
    nl = NeighborList(2.5, skin=0.4, return_shifts=True)
    for step in range(40):
        pos = pos + 0.03 * torch.randn(pos.shape, generator=g, dtype=torch.float64)
        if step % 10 == 9:  # the caller wraps particles back into the cell now and then
            frac = pos @ torch.linalg.inv(cell)
            pos = (frac - torch.floor(frac)) @ cell
        if step == 25:  # and the cell changes (NPT)
            cell = cell * 1.01
        edge_index, shifts = nl.update(pos, cell=cell)
        expected = radius_graph(pos, 2.5, cell=cell, return_shifts=True)
        assert torch.equal(edge_index, expected[0]) and torch.equal(shifts, expected[1]), step
    assert 1 < nl.num_builds < 40
