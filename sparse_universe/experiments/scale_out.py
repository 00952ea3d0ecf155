"""Scale-out on torch.distributed: weak and strong scaling of a decomposed universe, 1 to P processes (CPU, gloo).

Run it as::

    sparse-universe scale-out                           # 1 and 2 processes, small sizes
    sparse-universe scale-out --procs 1,2,4,8,16 --per-proc 32000 --total 128000

For each process count P it spawns one gloo group of P CPU processes (one
thread each) and times two workloads, each in two modes:

* ``lj``: a Lennard-Jones gas (simple-cubic start, reduced density 0.5,
  temperature 1, cut-off 2.5, skin 0.3, float64), velocity-Verlet steps;
* ``train``: one training iteration of a ``UniverseStep`` (hidden 32, eps 1,
  radius surrogate at 2) on the same particles: a 3-step rollout, the path
  loss of every particle, backward, and the gradient sum over ranks;
* ``weak``: a cube of ``--per-proc`` lattice sites per process, the bricks
  of the grid of ranks (:func:`~sparse_universe.distributed.choose_grid`)
  stacked into the box; ``strong``: a cube of ``--total`` sites split over
  the P processes (both rounded to a cube).

Each time is split into compute, halo exchange (the exchanges and all-reduces
of a step, including waiting for the slowest rank) and migration (moving
particles to their new owner and rebuilding the send lists), as the mean over
ranks of each part. Efficiency is the time per particle and process of the
fewest processes over that of P: weak ``t(1) / t(P)``, strong
``t(1) / (P t(P))`` at equal particles per process. Writes ``scale_out_cpu.csv`` and ``scale_out_cpu.png``
to ``--out``. On a machine with fewer cores than P the processes share
cores and the figures show correctness, not scaling.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from tqdm.auto import tqdm

from . import command_main, write_csv

WORKLOADS = ("lj", "train")


@dataclass
class Row:
    workload: str
    mode: str  # "weak" or "strong"
    procs: int
    particles: int
    seconds: float  # per step (lj) or per training iteration (train)
    compute: float
    exchange: float
    migration: float
    efficiency: float = float("nan")


def _worker(rank: int, procs: int, port: int, out: str, per_proc: int, total: int, steps: int) -> None:
    import torch.distributed as dist

    from ..distributed import DistributedState, choose_grid, reduce_gradients
    from ..distributed.comm import clocked
    from ..losses import path_loss
    from ..nn import UniverseStep
    from ..physics import LennardJones, PairForceStep
    from ..simulate import rollout
    from .lj_gas import lattice

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=procs)
    rows = []
    grid = choose_grid(procs, [1.0] * 3)
    side = round(per_proc ** (1 / 3))
    strong = round(total ** (1 / 3))
    for mode, shape in (("weak", [side * g for g in grid]), ("strong", [strong] * 3)):
        state, box = lattice(shape, 0.5, 1.0)
        lj = PairForceStep(LennardJones(cutoff=2.5), dt=0.005, box=box)
        torch.manual_seed(0)
        model = UniverseStep(3, 1, 32, eps=1.0, dt=0.05, sigma=0.0, box=box).double()
        path = torch.tensor(box, dtype=torch.float64).expand(3, 3) / 2
        members = torch.arange(state.num_particles)

        def lj_run(dstate, lj=lj):
            return rollout(lj, dstate, steps, integrator="verlet", horizon=None).final

        def train_run(dstate, model=model, path=path, members=members):
            for _ in range(steps):
                model.zero_grad()
                path_loss(rollout(model, dstate, 3, horizon=None).pos, path, members, reading="particle").backward()
                reduce_gradients(model)
            return dstate

        for workload, run in (("lj", lj_run), ("train", train_run)):
            dstate = DistributedState.scatter(state, grid, box=box, skin=0.3)
            run(dstate)  # warm-up: first rebuild, allocations
            dist.barrier()
            start = time.perf_counter()
            with clocked() as clock:
                run(dstate)
            seconds = time.perf_counter() - start
            parts = torch.tensor([seconds, clock["exchange"], clock["migration"]], dtype=torch.float64)
            dist.all_reduce(parts)
            mean = (parts / procs / steps).tolist()
            rows.append(Row(workload, mode, procs, state.num_particles, mean[0], mean[0] - mean[1] - mean[2],
                            mean[1], mean[2]))
    if rank == 0:
        Path(out).write_text(json.dumps([asdict(r) for r in rows]))
    dist.destroy_process_group()


def run(procs: Sequence[int] = (1, 2), per_proc: int = 4000, total: int = 8000, steps: int = 10,
        progress: bool = True) -> List[Row]:
    """Spawn one group per process count and time every workload in both modes."""
    rows: List[Row] = []
    ctx = multiprocessing.get_context("spawn")
    for p in tqdm(procs, desc="scale-out", disable=not progress):
        with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            out = os.path.join(tmp, "rows.json")
            workers = [ctx.Process(target=_worker, args=(rank, p, port, out, per_proc, total, steps))
                       for rank in range(p)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            if any(w.exitcode for w in workers) or not os.path.exists(out):
                raise RuntimeError(f"scale-out workers for P={p} exited with {[w.exitcode for w in workers]}")
            rows += [Row(**r) for r in json.loads(Path(out).read_text())]
    for row in rows:  # time per particle and process, against the fewest processes
        base = next(r for r in rows if (r.workload, r.mode, r.procs) == (row.workload, row.mode, min(procs)))
        row.efficiency = (base.seconds * base.procs / base.particles) / (row.seconds * row.procs / row.particles)
    return rows


def plot(rows: Sequence[Row], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for workload in WORKLOADS:
        for mode, style in (("weak", "-o"), ("strong", "--s")):
            sel = [r for r in rows if (r.workload, r.mode) == (workload, mode)]
            left.plot([r.procs for r in sel], [r.efficiency for r in sel], style, label=f"{workload}, {mode}")
    left.axhline(0.8, color="grey", lw=0.8, ls=":")
    left.set(xlabel="processes", ylabel="parallel efficiency", xscale="log", title="scaling efficiency")
    counts = sorted({r.procs for r in rows})
    left.set_xticks(counts, [str(p) for p in counts])
    left.minorticks_off()
    left.legend()
    sel = [r for r in rows if r.mode == "weak"]
    labels = [f"{r.workload}\nP={r.procs}" for r in sel]
    bottom = [0.0] * len(sel)
    for part in ("compute", "exchange", "migration"):
        values = [getattr(r, part) * 1e3 for r in sel]
        right.bar(labels, values, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values)]
    right.set(ylabel="ms per step (mean over ranks)", title="weak scaling: where the time goes")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def table(rows: Sequence[Row]) -> str:
    lines = ["| workload | mode | P | particles | ms/step | compute | exchange | migration | efficiency |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.workload} | {r.mode} | {r.procs} | {r.particles} | {r.seconds * 1e3:.1f} | "
              f"{r.compute * 1e3:.1f} | {r.exchange * 1e3:.1f} | {r.migration * 1e3:.1f} | {r.efficiency:.2f} |"
              for r in rows]
    return "\n".join(lines)


def _counts(text: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated process counts like 1,2,4 (got {text!r})") \
            from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected process counts >= 1 (got {text!r})")
    return sorted(set(values))


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from . import number

    parser.add_argument("--procs", type=_counts, default=[1, 2], help="process counts, e.g. 1,2,4,8")
    parser.add_argument("--per-proc", type=number(int, 1), default=4000, help="particles per process (weak)")
    parser.add_argument("--total", type=number(int, 1), default=8000, help="particles in all (strong)")
    parser.add_argument("--steps", type=number(int, 1), default=10, help="timed steps (iterations for train)")
    parser.add_argument("--out", type=Path, default=Path("data"))
    return parser


def outputs(args: argparse.Namespace) -> List[Path]:
    return [args.out / "scale_out_cpu.csv", args.out / "scale_out_cpu.png"]


def execute(args: argparse.Namespace) -> List[Row]:
    rows = run(args.procs, args.per_proc, args.total, args.steps)
    csv, png = outputs(args)
    write_csv(rows, csv)
    plot(rows, png)
    print(table(rows))
    print(f"{os.cpu_count()} CPU cores; wrote {csv} and {png}")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> List[Row]:
    return command_main("scale_out", argv)


if __name__ == "__main__":
    main()
