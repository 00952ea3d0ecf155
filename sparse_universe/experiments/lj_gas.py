"""Lennard-Jones gas: energy conservation by integrator, and the cost of a Verlet step.

Run it as::

    sparse-universe lj                         # 512 particles, 10^4 steps, every integrator
    sparse-universe lj --bench 1e5             # time per Verlet step at N = 10^5 against the graph build

A simple-cubic lattice at reduced density ``--density`` in a periodic box,
Maxwell velocities at ``--temperature`` (total momentum zero), LJ cut and
shifted at 2.5 sigma, float64, time step ``--dt``, pairs from a Verlet list
(skin 0.3, exact at every step). Each integrator runs
``--steps`` steps; the total energy is recorded every ``--every`` steps and
the relative drift ``max_t |E(t) - E(0)| / |E(0)|`` reported, with the
largest total-momentum component. A run whose energy moves more than
``|E(0)| / 2`` from its start is stopped and reported as diverged. Writes
``data/lj_energy.csv`` and ``data/lj_energy.png``; ``--bench`` writes
``data/lj_bench_<device>.csv``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..neighbors import NeighborList, radius_graph
from ..physics import INTEGRATORS, LennardJones, PairForceStep
from ..physics.integrators import advance
from ..physics.observables import kinetic_energy, momentum
from ..state import ParticleState
from . import command_main, number, write_csv


def lattice_gas(n: int, density: float, temperature: float, dtype=torch.float64, device="cpu", seed: int = 0):
    """``n`` particles (rounded up to a cube) on a simple-cubic lattice; returns the state and box side."""
    per_side = math.ceil(n ** (1 / 3))
    state, box = lattice((per_side,) * 3, density, temperature, dtype, device, seed)
    return state, box[0]


def lattice(shape: Sequence[int], density: float, temperature: float, dtype=torch.float64, device="cpu",
            seed: int = 0):
    """A simple-cubic lattice of ``shape`` sites per axis, Maxwell velocities of zero total momentum;
    returns the state and the box sides."""
    spacing = density ** (-1 / 3)
    g = torch.Generator().manual_seed(seed)
    axes = [(torch.arange(k, dtype=dtype) + 0.5) * spacing for k in shape]
    pos = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).view(-1, len(shape))
    vel = math.sqrt(temperature) * torch.randn(pos.shape, generator=g, dtype=dtype)
    state = ParticleState(pos.to(device), (vel - vel.mean(0)).to(device))
    return state, [k * spacing for k in shape]


def total_energy(step: PairForceStep, state: ParticleState) -> float:
    return float(kinetic_energy(state).sum() + step.potential_energy(state).sum())


def run_energy(integrator: str, n: int = 512, density: float = 0.5, temperature: float = 1.0, dt: float = 0.005,
               steps: int = 10_000, every: int = 10, progress: bool = True) -> List[dict]:
    state, side = lattice_gas(n, density, temperature)
    verlet_list = NeighborList(2.5, skin=0.3, box=[side] * 3)
    step = PairForceStep(LennardJones(cutoff=2.5), dt=dt, box=[side] * 3, neighbor_search=verlet_list.update)
    e0, rows, cached = total_energy(step, state), [], None
    with torch.no_grad():
        for t in tqdm(range(steps + 1), desc=f"lj {integrator}", disable=not progress, leave=False):
            if t % every == 0:
                energy = total_energy(step, state)
                rows.append(dict(integrator=integrator, step=t, time=t * dt, energy=energy,
                                 drift=abs(energy - e0) / abs(e0),
                                 momentum=float(momentum(state).abs().max())))
                if not math.isfinite(energy) or abs(energy - e0) > 0.5 * abs(e0):
                    break  # diverged
            if t < steps:
                state, cached = advance(integrator, step.acceleration, state, dt, cached)
    return rows


def bench(n: float, density: float = 0.8, repeats: int = 5, device: str = "cpu") -> dict:
    """Median seconds of one Verlet step (float32) and of the neighbour-graph build alone.

    The step rebuilds the exact graph from scratch (``radius_graph``); with
    a Verlet list (skin 0.3) it is timed too, over ``repeats`` consecutive steps.
    """
    state, side = lattice_gas(int(n), density, 1.0, torch.float32, device)
    step = PairForceStep(LennardJones(cutoff=2.5), dt=0.005, box=[side] * 3)
    listed = PairForceStep(LennardJones(cutoff=2.5), dt=0.005, box=[side] * 3,
                           neighbor_search=NeighborList(2.5, skin=0.3, box=[side] * 3).update)
    sync = torch.cuda.synchronize if state.pos.is_cuda else (lambda: None)

    def timed(fn):
        out = []
        for _ in range(repeats + 1):  # one warm-up
            sync()
            start = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - start)
        return statistics.median(out[1:])

    def verlet(model):
        cache = {"state": state, "acc": None}

        def run():
            cache["state"], cache["acc"] = advance("verlet", model.acceleration, cache["state"], model.dt,
                                                   cache["acc"])
        return run

    with torch.no_grad():
        graph_s = timed(lambda: radius_graph(state.pos, 2.5, box=[side] * 3))
        step_s, listed_s = timed(verlet(step)), timed(verlet(listed))
        edges = radius_graph(state.pos, 2.5, box=[side] * 3).size(1)
    return dict(n=state.num_particles, density=density, edges=edges, verlet_step_s=step_s, graph_s=graph_s,
                ratio=step_s / graph_s, verlet_list_step_s=listed_s, device=str(state.pos.device))


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--particles", type=number(int, 2), default=512)
    parser.add_argument("--density", type=number(float, 0, strict=True), default=0.5)
    parser.add_argument("--temperature", type=number(float, 0), default=1.0)
    parser.add_argument("--dt", type=number(float, 0, strict=True), default=0.005)
    parser.add_argument("--steps", type=number(int, 1), default=10_000)
    parser.add_argument("--every", type=number(int, 1), default=10)
    parser.add_argument("--integrators", nargs="+", choices=INTEGRATORS, default=list(INTEGRATORS))
    parser.add_argument("--bench", type=number(float, 2), default=None, help="instead: time a Verlet step at this N")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("data"))
    return parser


def outputs(args: argparse.Namespace) -> List[Path]:
    if args.bench is not None:
        return [args.out / f"lj_bench_{args.device}.csv"]
    return [args.out / "lj_energy.csv", args.out / "lj_energy.png"]


def execute(args: argparse.Namespace) -> List[dict]:
    from ..viz import plot_energy

    if args.bench is not None:
        row = bench(args.bench, device=args.device)
        path = write_csv([row], outputs(args)[0])
        print(f"N = {row['n']}, {row['edges']} edges: Verlet step {row['verlet_step_s']:.3f} s, graph build "
              f"{row['graph_s']:.3f} s (step / graph = {row['ratio']:.2f}); with a Verlet list "
              f"{row['verlet_list_step_s']:.3f} s per step; wrote {path}")
        return [row]
    rows = [r for name in args.integrators for r in run_energy(name, args.particles, args.density,
                                                                 args.temperature, args.dt, args.steps, args.every)]
    path = write_csv(rows, outputs(args)[0])
    plot_energy(rows, path.with_suffix(".png"))
    for name in args.integrators:
        sel = [r for r in rows if r["integrator"] == name]
        status = "" if sel[-1]["step"] == args.steps else f" (diverged; stopped at step {sel[-1]['step']})"
        print(f"{name:>14}: max relative energy drift {max(r['drift'] for r in sel):.3g}, "
              f"max |total momentum| {max(r['momentum'] for r in sel):.2g}{status}")
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    return command_main("lj_gas", argv)


if __name__ == "__main__":
    main()
