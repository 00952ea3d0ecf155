"""Small systems as GNN training sees them: batches of molecules and single clouds, in one run (CPU).

Run it as part of the scaling experiment::

    sparse-universe scale --small             # writes data/small_cpu.csv and small_cpu.png

Cases (d = 3):

* ``molecules-64`` and ``molecules-512``: batches of 64 and 512 molecules of
  10-100 atoms (compact Gaussian blobs at about 0.1 atoms per cubic Angstrom),
  cut-off 5 Angstrom, non-periodic.
* ``cloud-1e3``, ``cloud-1e4``, ``cloud-1e5``: one uniform cloud with about 20
  neighbours per point.

Methods: this engine eager (``radius_graph``, ``backend="auto"``) and in
capacity mode (``radius_graph_padded`` with room for every edge), both on the
whole batch in one call; torch-cluster on the whole batch (its cap set above
the largest degree, so it is exact); vesin and scipy's cKDTree once per
molecule, as users call them. Every method's directed edge count is checked
equal (cKDTree's unordered pairs count twice).
Methods are timed in rounds (one run of each per round), as in
:mod:`~sparse_universe.experiments.crystals`.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..neighbors import radius_graph
from ..neighbors.capacity import radius_graph_padded
from . import crystals
from .crystals import Row, _time

CUTOFF = 5.0


def molecules(count: int, low: int = 10, high: int = 100, seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Positions and batch ids of ``count`` compact molecules of ``low``-``high`` atoms."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(low, high + 1, (count,), generator=g)
    batch = torch.repeat_interleave(torch.arange(count), sizes)
    spread = (sizes.double() / 0.1 * 3 / (4 * math.pi)) ** (1 / 3) / 2  # blob radius ~ 2 std
    pos = torch.randn(batch.numel(), 3, generator=g, dtype=torch.float64) * spread.index_select(0, batch)[:, None]
    return pos, batch


def cloud(n: int, neighbors: float = 20.0, seed: int = 0) -> Tuple[Tensor, Tensor, float]:
    pos = torch.rand(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return pos, torch.zeros(n, dtype=torch.long), (neighbors / (n * 4 / 3 * math.pi)) ** (1 / 3)


def _methods(pos: Tensor, batch: Tensor, r: float) -> Dict[str, Callable[[], int]]:
    import torch_cluster
    from scipy.spatial import cKDTree
    from vesin import NeighborList

    edges = radius_graph(pos, r, batch).size(1)
    cap = int(torch.bincount(radius_graph(pos, r, batch)[1], minlength=pos.size(0)).max()) + 1 if edges else 1
    single = bool((batch == batch[0]).all())
    parts = [pos[batch == b].numpy() for b in torch.unique(batch).tolist()]
    vesin = NeighborList(cutoff=r, full_list=True)
    return {
        "engine": lambda: radius_graph(pos, r, batch).size(1),
        "capacity": lambda: int(radius_graph_padded(pos, r, batch, capacity=edges).num_edges),
        "torch-cluster": lambda: torch_cluster.radius_graph(pos, r, None if single else batch,
                                                            max_num_neighbors=cap).size(1),
        "vesin": lambda: sum(len(vesin.compute(p, np.zeros((3, 3)), False, "i")[0]) for p in parts),
        "kdtree": lambda: sum(2 * len(cKDTree(p).query_pairs(r, output_type="ndarray")) for p in parts),
    }


def run(repeats: int = 5, only: Sequence[str] = (), progress: bool = True) -> List[Row]:
    """Time every method on every case (or the cases named in ``only``); the edge counts must agree."""
    cases = {"molecules-64": lambda: (*molecules(64), CUTOFF),
             "molecules-512": lambda: (*molecules(512, seed=1), CUTOFF),
             **{f"cloud-1e{k}": lambda k=k: cloud(10**k) for k in (3, 4, 5)}}
    rows: List[Row] = []
    for name, make in tqdm(cases.items(), desc="small", disable=not progress):
        if only and name not in only:
            continue
        pos, batch, r = make()
        runs = _methods(pos, batch, r)
        timed = _time(runs, dict.fromkeys(runs, repeats))
        if len({pairs for _, pairs in timed.values()}) > 1:
            raise RuntimeError(f"methods disagree on the edge count in {name}: {timed}")
        engine = timed["engine"][0]
        rows += [Row(name, m, pos.size(0), pairs, t, t / engine) for m, (t, pairs) in timed.items()]
    return rows


def table(rows: Sequence[Row]) -> str:
    return crystals.table(rows, ms=True)
