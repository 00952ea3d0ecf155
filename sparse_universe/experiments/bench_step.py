"""Forward + backward time of one universe step, and the share spent building the graph.

Run it as::

    sparse-universe bench-step                       # CPU, N = 1e4 and 1e5, d = 3
    python -m sparse_universe.experiments.bench_step --device cuda --sizes 1e4 1e5 1e6

    sparse-universe bench-step --waves 4 4           # wave mode (K=4, H=4) against N*K particles

Particles are uniform in the unit cube, ``eps`` gives about ``--neighbors``
collision partners each, the ``"radius"`` surrogate looks ``--surrogate-factor``
times farther. Each configuration runs one warm-up step, then ``--repeats``
timed steps; the median is kept. "graph" is the time inside the neighbour
search (the layer's ``graph`` call). Writes ``data/bench_step_<device>.csv``.

With ``--waves K H`` it instead times one :class:`BranchManager` step of
``N`` particles already spread to ``K`` copies each, against the particle
universe of ``N * K`` particles (the same number of graph nodes and density;
inertial dynamics, so copies stay near their particle), and writes
``data/bench_waves_<device>.csv``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from tqdm import tqdm

from ..branching import BranchManager, WaveState
from ..nn import UniverseStep
from ..state import ParticleState
from . import command_main, number, write_csv
from .scaling import loglog_slope, radius_for


@dataclass
class Row:
    surrogate: str
    n: int
    median_s: float
    graph_s: float
    graph_share: float
    particle_steps_per_s: float
    device: str


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cloud(n: int, device: torch.device) -> ParticleState:
    g = torch.Generator().manual_seed(n)
    return ParticleState(torch.rand(n, 3, generator=g), 0.01 * torch.randn(n, 3, generator=g),
                         torch.randn(n, 3, generator=g), torch.randint(0, 4, (n,), generator=g)).to(device)


def _median_time(run, repeats: int, device: torch.device) -> float:
    """Median wall time of ``run`` over ``repeats`` calls after one warm-up."""
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def measure_waves(n: int, copies: int, heads: int, neighbors: float, factor: float, repeats: int,
                  device: torch.device, hidden: int = 32) -> dict:
    """Wave step of ``n`` particles x ``copies`` against a particle step of ``n * copies`` particles."""
    eps = radius_for(n * copies, 3, neighbors)
    torch.manual_seed(0)
    step = UniverseStep(3, 4, hidden, eps, dt=0.1, sigma=0.05, surrogate="radius",
                        surrogate_radius=factor * eps, inertia=True).to(device)
    manager = BranchManager(step, copies, heads)
    wave = WaveState.from_particles(_cloud(n, device))
    with torch.no_grad():
        while int(wave.copies_per_particle().min()) < copies:  # spread to K copies first
            wave, _ = manager(wave)
    big = _cloud(n * copies, device)

    def wave_step():
        step.zero_grad()
        new, measured = manager(wave)
        (measured.square().sum() + new.copies.vel.square().sum()).backward()

    def particle_step():
        step.zero_grad()
        new = step(big)
        (new.pos.square().sum() + new.vel.square().sum()).backward()

    wave_s, particle_s = _median_time(wave_step, repeats, device), _median_time(particle_step, repeats, device)
    edges = (manager.graph(wave.copies, wave.particle).size(1), step.collide.graph(big.pos, big.batch).size(1))
    return dict(n=n, copies=copies, heads=heads, nodes=wave.copies.num_particles, wave_s=wave_s,
                particle_s=particle_s, ratio=wave_s / particle_s, wave_edges=edges[0], particle_edges=edges[1],
                device=device.type)


def measure(n: int, surrogate: Optional[str], neighbors: float, factor: float, repeats: int,
            device: torch.device, hidden: int = 32) -> Row:
    eps = radius_for(n, 3, neighbors)
    state = _cloud(n, device)
    torch.manual_seed(0)
    step = UniverseStep(3, 4, hidden, eps, dt=0.1, surrogate=surrogate, surrogate_radius=factor * eps).to(device)
    graph_times: List[float] = []
    search = step.collide.graph

    def timed_graph(pos, batch):
        _sync(device)
        start = time.perf_counter()
        out = search(pos, batch)
        _sync(device)
        graph_times.append(time.perf_counter() - start)
        return out

    step.collide.graph = timed_graph
    totals = []
    for _ in range(repeats + 1):  # the first is a warm-up
        graph_times.clear()
        step.zero_grad()
        _sync(device)
        start = time.perf_counter()
        nxt = step(state)
        (nxt.pos.square().sum() + nxt.vel.square().sum()).backward()
        _sync(device)
        totals.append((time.perf_counter() - start, sum(graph_times)))
    total, graph = (statistics.median(v) for v in zip(*totals[1:]))
    return Row(str(surrogate), n, total, graph, graph / total, n / total, device.type)


def table(rows: List[Row]) -> str:
    head = f"{'surrogate':>9} {'N':>8} {'median s':>9} {'graph s':>8} {'graph %':>7} {'particle-steps/s':>16}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.surrogate:>9} {r.n:>8} {r.median_s:>9.4f} {r.graph_s:>8.4f} "
                     f"{100 * r.graph_share:>6.1f}% {r.particle_steps_per_s:>16.3g}")
    for s in dict.fromkeys(r.surrogate for r in rows):
        pts = [(r.n, r.median_s) for r in rows if r.surrogate == s]
        lines.append(f"log-log slope of step time, surrogate={s}: {loglog_slope(pts):.3f}")
    return "\n".join(lines)


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=number(float, 1), nargs="+", default=[1e4, 1e5])
    parser.add_argument("--surrogates", nargs="+", choices=("radius", "dense", "none"), default=["radius", "none"])
    parser.add_argument("--neighbors", type=number(float, 0, strict=True), default=20.0)
    parser.add_argument("--surrogate-factor", type=number(float, 1, strict=True), default=1.5,
                        help="surrogate radius / eps")
    parser.add_argument("--repeats", type=number(int, 1), default=3)
    parser.add_argument("--waves", type=number(int, 1), nargs=2, metavar=("K", "H"), default=None,
                        help="time wave mode with K copies and H heads instead")
    parser.add_argument("--out", type=Path, default=Path("data"))
    return parser


def outputs(args: argparse.Namespace) -> List[Path]:
    return [args.out / f"bench_{'waves' if args.waves else 'step'}_{torch.device(args.device).type}.csv"]


def execute(args: argparse.Namespace) -> List:
    device = torch.device(args.device)
    if args.waves:
        return execute_waves(args, device)
    jobs = [(s, int(n)) for s in args.surrogates for n in args.sizes]
    rows = [measure(n, None if s == "none" else s, args.neighbors, args.surrogate_factor, args.repeats, device)
            for s, n in tqdm(jobs, desc="bench-step")]
    path = write_csv(rows, outputs(args)[0])
    print(table(rows))
    print(f"wrote {path}")
    return rows


def execute_waves(args: argparse.Namespace, device: torch.device) -> List[dict]:
    rows = [measure_waves(int(n), *args.waves, args.neighbors, args.surrogate_factor, args.repeats, device)
            for n in tqdm(args.sizes, desc="bench-waves")]
    path = write_csv(rows, outputs(args)[0])
    for r in rows:
        print(f"N={r['n']} K={r['copies']} H={r['heads']}: wave step {r['wave_s']:.3f} s over {r['nodes']} copies "
              f"({r['wave_edges']} edges), particle step {r['particle_s']:.3f} s over {r['nodes']} particles "
              f"({r['particle_edges']} edges): ratio {r['ratio']:.2f}")
    print(f"wrote {path}")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> List:
    return command_main("bench_step", argv)


if __name__ == "__main__":
    main()
