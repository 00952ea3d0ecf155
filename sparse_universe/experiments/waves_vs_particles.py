"""Does wave-particle duality help optimisation? Particles, variational velocity and waves, many seeds.

Run it as::

    sparse-universe waves-vs-particles                      # 10 seeds per method
    python -m sparse_universe.experiments.waves_vs_particles --seeds 20 --budget 3e5

The task is the path experiment (``train_path``): a token group must carry a
circle, and plain gradients tend to stop at a chord through it (a local
optimum). Methods, each trained from the same initial universes and seeds:

* ``particles``: deterministic velocity (``sigma = 0``);
* ``variational``: the seed's variational velocity (``sigma > 0``);
* ``waves K,H``: a :class:`~sparse_universe.BranchManager` with K copies and
  H heads, trained on the measured positions.

Equal compute means an equal budget of simulated node-steps (graph nodes x
time steps, summed over iterations; waves therefore get fewer iterations),
or with ``--equal time`` an equal wall-clock budget per run (``--seconds``).
Every trained model is then evaluated the same way: as a deterministic
particle universe (eval mode, one copy). Success means the members stay
within one sigma of the path on average (particle-reading loss below
``d/2 log(2 pi) + 1/2``). Writes ``data/waves_vs_particles.csv`` and ``.png``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from tqdm.auto import tqdm

from ..branching import BranchManager
from . import train_path as tp
from . import write_csv

#: (name, sigma, copies K, heads H)
METHODS: Tuple[Tuple[str, float, int, int], ...] = (
    ("particles", 0.0, 1, 1),
    ("variational", 0.3, 1, 1),
    ("waves 2,2", 0.3, 2, 2),
    ("waves 4,4", 0.3, 4, 4),
)
#: The task, smaller than train_path's default so that many seeds fit.
TASK = tp.Config(universes=2, particles=24, steps=16, iterations=0)
#: Simulated node-steps per run: ~200 iterations of the particle universe above.
BUDGET = 1.5e5


def success_threshold(dim: int) -> float:
    """Particle-reading loss of members one sigma from the path on average."""
    return 0.5 * dim * math.log(2 * math.pi) + 0.5


def run_one(method: Tuple[str, float, int, int], seed: int, budget: float, cfg: tp.Config,
            seconds: Optional[float] = None) -> dict:
    """Train one method from one seed; ``seconds`` replaces the node-step budget by a time budget."""
    name, sigma, copies, heads = method
    cfg = replace(cfg, seed=seed, sigma=sigma)
    state = tp.make_universes(cfg)
    step = tp.build_model(cfg)
    model = step if copies == heads == 1 else BranchManager(step, copies, heads, sigma=sigma)
    node_steps = cfg.universes * cfg.particles * cfg.steps * copies
    iterations = max(1, int(budget // node_steps)) if seconds is None else 0
    opt = torch.optim.Adam(step.parameters(), lr=cfg.lr)
    torch.manual_seed(seed + 1)
    start = time.perf_counter()
    model.train()
    done = 0
    while done < iterations or (seconds is not None and time.perf_counter() - start < seconds):
        done += 1
        opt.zero_grad()
        loss = tp.loss_of(model, state, cfg, "particle")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(step.parameters(), cfg.clip)
        opt.step()
    seconds = time.perf_counter() - start
    final = tp.evaluate(step, state, cfg)
    return dict(method=name, seed=seed, iterations=done, node_steps=done * node_steps,
                seconds=seconds, loss_particle=final["particle"], loss_density=final["density"],
                success=final["particle"] < success_threshold(cfg.dim))


def run(seeds: int = 10, budget: float = BUDGET, cfg: tp.Config = TASK,
        methods: Sequence[Tuple[str, float, int, int]] = METHODS, progress: bool = True,
        seconds: Optional[float] = None) -> List[dict]:
    jobs = [(m, s) for s in range(seeds) for m in methods]
    return [run_one(m, s, budget, cfg, seconds) for m, s in tqdm(jobs, desc="waves-vs-particles", disable=not progress)]


def summary(rows: List[dict]) -> str:
    head = f"{'method':>12} {'runs':>4} {'success':>8} {'median loss':>11} {'IQR':>15} {'median s':>8}"
    lines = [head, "-" * len(head)]
    for name in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == name]
        losses = sorted(r["loss_particle"] for r in sel)
        q = statistics.quantiles(losses, n=4, method="inclusive") if len(losses) > 1 else [losses[0]] * 3
        lines.append(f"{name:>12} {len(sel):>4} {sum(r['success'] for r in sel) / len(sel):>8.0%} "
                     f"{statistics.median(losses):>11.3f} {f'{q[0]:.3f}-{q[2]:.3f}':>15} "
                     f"{statistics.median(r['seconds'] for r in sel):>8.1f}")
    return "\n".join(lines)


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=float, default=BUDGET, help="simulated node-steps per run")
    parser.add_argument("--equal", choices=("node-steps", "time"), default="node-steps", help="what is held equal")
    parser.add_argument("--seconds", type=float, default=7.0, help="wall-clock per run with --equal time")
    parser.add_argument("--out", type=Path, default=Path("data"))
    return parser


def execute(args: argparse.Namespace) -> List[dict]:
    from ..viz import plot_methods

    seconds = args.seconds if args.equal == "time" else None
    rows = run(args.seeds, args.budget, seconds=seconds)
    stem = "waves_vs_particles" if seconds is None else "waves_vs_particles_time"
    path = write_csv(rows, args.out / f"{stem}.csv")
    budget = f"{seconds:g} s" if seconds is not None else f"{args.budget:g} node-steps"
    plot_methods(rows, success_threshold(TASK.dim), args.out / f"{stem}.png", f"equal budget per run: {budget}")
    print(summary(rows))
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    parser = build_parser(argparse.ArgumentParser(prog="sparse-universe waves-vs-particles", description=__doc__,
                                                  formatter_class=argparse.RawDescriptionHelpFormatter))
    return execute(parser.parse_args(argv))


if __name__ == "__main__":
    main()
