"""Reference answers that share no code with the engine."""

import itertools

import numpy as np
import torch
from scipy.spatial import cKDTree


def edge_set(edge_index):
    """Edges as a set of (source, target) tuples."""
    return set(map(tuple, edge_index.t().cpu().tolist()))


def kdtree_edges(pos, r, batch=None, box=None):
    """All ordered (j, i) with |x_i - x_j| <= r, per example; periodic via cKDTree's boxsize."""
    x = pos.detach().cpu().double().numpy()
    ids = np.zeros(len(x), dtype=np.int64) if batch is None else batch.cpu().numpy()
    out = set()
    for b in np.unique(ids):
        members = np.nonzero(ids == b)[0]
        pts = x[members]
        if box is not None:
            pts = np.mod(pts, np.asarray(box, dtype=np.float64))
        tree = cKDTree(pts, boxsize=None if box is None else np.asarray(box, dtype=np.float64))
        for i, j in tree.query_pairs(r, output_type="ndarray"):
            out.add((int(members[i]), int(members[j])))
            out.add((int(members[j]), int(members[i])))
    return out


def image_brute_force(pos, r, box, periodic):
    """Minimum-image edges by trying every image shift in {-1, 0, 1}^d explicitly."""
    x = pos.detach().cpu().double().numpy()
    box = np.asarray(box, dtype=np.float64)
    periodic = np.asarray(periodic, dtype=bool)
    x = np.where(periodic, np.mod(x, box), x)
    best = np.full((len(x), len(x)), np.inf)
    for shift in itertools.product((-1, 0, 1), repeat=x.shape[1]):
        shift = np.asarray(shift) * periodic * box
        diff = x[:, None, :] - (x[None, :, :] + shift)
        best = np.minimum(best, np.sqrt((diff ** 2).sum(-1)))
    i, j = np.nonzero(best <= r)
    return {(int(b), int(a)) for a, b in zip(i, j) if a != b}


def random_cloud(n, d, kind, generator, dtype=torch.float64):
    """Uniform or clustered points with negative coordinates."""
    if kind == "uniform":
        return (torch.rand(n, d, generator=generator, dtype=torch.float64) * 8 - 4).to(dtype)
    centres = torch.randn(5, d, generator=generator, dtype=torch.float64) * 3
    pick = torch.randint(0, 5, (n,), generator=generator)
    return (centres[pick] + 0.3 * torch.randn(n, d, generator=generator, dtype=torch.float64)).to(dtype)
