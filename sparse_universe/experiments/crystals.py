"""Periodic crystals as materials pipelines see them: this engine against vesin, matscipy and ASE, in one run.

Run it as part of the scaling experiment::

    sparse-universe scale --crystals          # writes data/crystals_cpu.csv and crystals_cpu.png

Cases (cut-off 5 Angstrom unless said):

* ``batch-64``: 64 structures of 8-200 atoms, each an fcc, bcc, hcp, diamond
  or rocksalt prototype replicated to size, strained into a triclinic cell
  and rattled. This engine takes the whole batch in one call (``cell``
  ``(64, 3, 3)``); the peers are called once per structure, as users call them.
* ``fcc-1e5``: one fcc copper supercell of 100,920 atoms.
* ``uniform-1e6``: 10^6 points uniform in the periodic unit cube with about
  20 neighbours each, through ``cell`` and through the older ``box``
  (minimum image, no shifts) against vesin.

Every method returns the full list with shifts (``ijS``; ``box`` returns
``ij``), and every method's pair count is checked equal. ASE and matscipy
are left out of the 10^6 case (tens of seconds each). Methods are timed in
rounds, each round running every method once, so that the drift of a shared
machine's speed hits all alike; the median of ``repeats`` rounds is kept
(5x as many for runs under 0.1 s; ASE: one run on the large cases).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from ..neighbors import radius_graph

CUTOFF = 5.0


@dataclass
class Row:
    case: str
    method: str
    atoms: int
    pairs: int  # directed pairs found (a full list)
    median_s: float
    ratio_to_engine: float  # this method's time / the engine's time on the same case


def crystal_batch(count: int = 64, low: int = 8, high: int = 200, seed: int = 0) -> list:
    """``count`` ASE structures of ``low``-``high`` atoms in random triclinic cells."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    prototypes = [bulk("Cu", "fcc", a=3.61), bulk("Fe", "bcc", a=2.87), bulk("Mg", "hcp", a=3.21, c=5.21),
                  bulk("Si", "diamond", a=5.43), bulk("NaCl", "rocksalt", a=5.64)]
    out = []
    for _ in range(count):
        base = prototypes[rng.integers(len(prototypes))]
        want = rng.integers(low, high + 1)
        reps = np.maximum(1, np.round((want / len(base)) ** (1 / 3) * rng.uniform(0.7, 1.3, 3))).astype(int)
        while len(base) * reps.prod() > high:
            reps[np.argmax(reps)] -= 1
        atoms = base * tuple(reps)
        strain = np.eye(3) + rng.uniform(-0.08, 0.08, (3, 3))
        atoms.set_cell(np.array(atoms.cell) @ strain, scale_atoms=True)
        atoms.rattle(0.05, seed=int(rng.integers(2**31)))
        atoms.wrap()
        out.append(atoms)
    return out


def fcc_supercell():
    from ase.build import bulk

    return bulk("Cu", "fcc", a=3.61, cubic=True) * (29, 29, 30)  # 100,920 atoms


def _engine(structures: list, cutoff: float, box: bool = False) -> Callable[[], int]:
    pos = torch.tensor(np.concatenate([a.positions for a in structures]))
    batch = torch.cat([torch.full((len(a),), b) for b, a in enumerate(structures)])
    cell = torch.tensor(np.stack([np.array(a.cell) for a in structures]))
    pbc = torch.tensor(np.stack([a.pbc for a in structures]))
    batch = None if len(structures) == 1 else batch
    if box:
        sides = torch.diagonal(cell[0])
        return lambda: radius_graph(pos, cutoff, batch, box=sides).size(1)
    return lambda: radius_graph(pos, cutoff, batch, cell=cell, pbc=pbc, return_shifts=True)[0].size(1)


def _per_structure(structures: list, cutoff: float, method: str) -> Callable[[], int]:
    if method == "vesin":
        from vesin import NeighborList

        def one(a):
            return len(NeighborList(cutoff=cutoff, full_list=True).compute(
                a.positions, np.array(a.cell), True, "ijS")[0])
    elif method == "matscipy":
        from matscipy.neighbours import neighbour_list

        def one(a):
            return len(neighbour_list("ijS", a, cutoff)[0])
    else:
        from ase.neighborlist import neighbor_list

        def one(a):
            return len(neighbor_list("ijS", a, cutoff)[0])
    return lambda: sum(one(a) for a in structures)


def _time(runs: Dict[str, Callable[[], int]], repeats: Dict[str, int]) -> Dict[str, Tuple[float, int]]:
    """Median time and pair count of each method, timed in rounds.

    After one warm-up each (imports, thread pools; it gives the count), every
    round runs each method once, so a drift of this shared machine's speed
    hits all methods alike; the order rotates from round to round, so no
    method always runs right after the same one. A method whose warm-up took
    under 0.1 s gets 5x the runs (a stray pause must not decide its median).
    """
    counts, runs_of = {}, {}
    for name, run in runs.items():
        start = time.perf_counter()
        counts[name] = run()
        runs_of[name] = repeats[name] * (5 if time.perf_counter() - start < 0.1 else 1)
    times: Dict[str, List[float]] = {name: [] for name in runs}
    names = list(runs)
    for k in range(max(runs_of.values(), default=0)):
        for name in names[k % len(names):] + names[:k % len(names)]:  # each method leads in turn
            if k < runs_of[name]:
                start = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), counts[name]) for name in runs}


def cases(neighbors: float = 20.0, seed: int = 0) -> Dict[str, Tuple[list, float, Sequence[str]]]:
    """``case -> (structures, cut-off, peers)``."""
    from ase import Atoms

    n = 10**6
    cube = Atoms(positions=np.random.default_rng(seed).uniform(size=(n, 3)), cell=np.eye(3), pbc=True)
    r = (neighbors / (n * 4 / 3 * math.pi)) ** (1 / 3)
    return {"batch-64": (crystal_batch(seed=seed), CUTOFF, ("vesin", "matscipy", "ase")),
            "fcc-1e5": ([fcc_supercell()], CUTOFF, ("vesin", "matscipy", "ase")),
            "uniform-1e6": ([cube], r, ("vesin",))}


def run(repeats: int = 3, only: Sequence[str] = (), progress: bool = True) -> List[Row]:
    """Time every method on every case; the pair counts must agree."""
    try:
        import ase  # noqa: F401
        import matscipy  # noqa: F401
        import vesin  # noqa: F401
    except ImportError as e:
        raise ImportError(f"the crystal benchmark compares with ase, vesin and matscipy ({e}); install them with "
                          f"pip install ase vesin matscipy, or the project's test extras") from e
    torch.manual_seed(0)
    rows: List[Row] = []
    chosen = {name: case for name, case in cases().items() if not only or name in only}
    for name, (structures, cutoff, peers) in tqdm(chosen.items(), desc="crystals", disable=not progress):
        atoms = sum(len(a) for a in structures)
        runs = {"engine": _engine(structures, cutoff)}
        if name == "uniform-1e6":
            runs["engine (box)"] = _engine(structures, cutoff, box=True)
        runs.update({peer: _per_structure(structures, cutoff, peer) for peer in peers})
        timed = _time(runs, {m: 1 if m == "ase" and atoms > 10**4 else repeats for m in runs})
        if len({pairs for _, pairs in timed.values()}) > 1:
            raise RuntimeError(f"methods disagree on the pair count in {name}: {timed}")
        engine = timed["engine"][0]
        rows += [Row(name, m, atoms, pairs, t, t / engine) for m, (t, pairs) in timed.items()]
    return rows


def table(rows: Sequence[Row], ms: bool = False) -> str:
    """A fixed-width table of the rows, times in seconds (``ms``: milliseconds)."""
    unit, scale = ("median ms", 1e3) if ms else ("median s", 1.0)
    head = f"{'case':>14} {'method':>13} {'atoms':>9} {'pairs':>10} {unit:>10} {'time / engine':>13}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.case:>14} {r.method:>13} {r.atoms:>9} {r.pairs:>10} {scale * r.median_s:>10.4f} "
                     f"{r.ratio_to_engine:>13.2f}")
    return "\n".join(lines)
