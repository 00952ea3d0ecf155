"""How-to: periodic crystals, from ASE atoms to edges, shifts, forces and stress.

The engine follows ASE's conventions: ``cell`` rows are lattice vectors, and
an edge ``j -> i`` with shift ``S`` has its neighbour at ``pos[j] + S @ cell``,
so ``pos[j] - pos[i] + S @ cell`` is ASE's ``D``. A batch of structures with
different cells goes in one call with ``cell`` of shape ``(B, 3, 3)``.

Run it: ``python docs/howto/crystals.py`` (needs ``ase``, in the test extras).
"""

import numpy as np
import torch
from ase.build import bulk
from ase.neighborlist import neighbor_list

from sparse_universe import edge_vectors, radius_graph

cutoff = 5.0
structures = [
    bulk("Cu", "fcc", a=3.61),
    bulk("Si", "diamond", a=5.43),
    bulk("Fe", "bcc", a=2.87) * (2, 1, 1),
]
# a triclinic 2-atom cell, slightly disordered
structures[1].rattle(0.05, seed=1)

# ASE atoms in: positions, one cell per structure, pbc, and each atom's structure.
pos = torch.tensor(np.concatenate([a.positions for a in structures]))
# (3, 3, 3)
cell = torch.tensor(np.stack([a.cell.array for a in structures]))
pbc = torch.tensor(np.stack([a.pbc for a in structures]))  # (3, 3)
batch = torch.cat([torch.full((len(a),), b) for b, a in enumerate(structures)])

# Edges and shifts out: sorted by target, source, shift; any cut-off,
# also one longer than the cell.
edge_index, shifts = radius_graph(
    pos, cutoff, batch, cell=cell, pbc=pbc, return_shifts=True
)
first = batch[edge_index[1]] == 0
# ASE on the 1-atom copper cell
i, j, S = neighbor_list("ijS", structures[0], cutoff)
# three fcc shells within 5 A
assert first.sum() == len(i) == 12 + 6 + 24
ours = sorted(
    zip(
        edge_index[1][first].tolist(),
        edge_index[0][first].tolist(),
        map(tuple, shifts[first].tolist()),
    )
)
assert ours == sorted(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))
print(f"{edge_index.size(1)} edges over {len(structures)} structures")


# Forces and stress by autograd with a Lennard-Jones pair energy (argon-like units).
def lennard_jones(dist, epsilon=0.0104, sigma=2.5):
    x = (sigma / dist) ** 6
    return 4 * epsilon * (x * x - x)


def energy_forces_stress(pos, cell, batch, edge_index, shifts):
    """Energy per structure, forces, and stress by the strain trick.

    Positions and cells are scaled by I + strain; the stress is the energy's
    gradient with respect to the strain over the volume.
    """
    strain = torch.zeros(cell.size(0), 3, 3, dtype=pos.dtype, requires_grad=True)
    pos = pos.detach().requires_grad_()
    deform = torch.eye(3, dtype=pos.dtype) + strain
    strained_pos = torch.einsum("ni,nij->nj", pos, deform[batch])
    strained_cell = torch.bmm(cell, deform)
    _, dist = edge_vectors(
        strained_pos, edge_index, shifts=shifts, cell=strained_cell, batch=batch
    )
    # each pair appears twice
    pair = 0.5 * lennard_jones(dist)
    energy = torch.zeros(cell.size(0), dtype=pos.dtype).index_add(
        0, batch[edge_index[1]], pair
    )
    d_pos, d_strain = torch.autograd.grad(energy.sum(), (pos, strain))
    volume = torch.linalg.det(cell).abs()
    return energy.detach(), -d_pos, d_strain / volume[:, None, None]


energy, forces, stress = energy_forces_stress(pos, cell, batch, edge_index, shifts)

# Check one stress component against a finite difference of the energy under strain.
h, k = 1e-6, 1
for sign in (1, -1):
    deform = torch.eye(3, dtype=pos.dtype)
    deform[0, 0] += sign * h
    p, c = pos @ deform, cell @ deform
    e, s = radius_graph(p, cutoff, batch, cell=c, pbc=pbc, return_shifts=True)
    _, d = edge_vectors(p, e, shifts=s, cell=c, batch=batch)
    e_k = (0.5 * lennard_jones(d))[batch[e[1]] == k].sum()
    if sign == 1:
        plus = e_k
    else:
        minus = e_k
numeric = (plus - minus) / (2 * h) / torch.linalg.det(cell[k]).abs()
torch.testing.assert_close(stress[k, 0, 0], numeric, rtol=1e-5, atol=1e-9)
# a near-equilibrium lattice, small forces
assert forces.abs().max() < 10
print(
    f"energies {energy.tolist()}\n"
    f"stress[Si] xx {stress[k, 0, 0]:.4g} eV/A^3 (finite difference {numeric:.4g})"
)
