"""Does wave-particle duality help optimisation? Particles, variational velocity and waves, many seeds.

Run it as::

    sparse-universe waves-vs-particles                      # the two-slit task, 10 seeds per method
    sparse-universe waves-vs-particles --task circle        # the circle-path task
    python -m sparse_universe.experiments.waves_vs_particles --seeds 20 --budget 3e5 --equal time

Two tasks, each trained from the same starts and seeds by every method:

* ``slits``: a group of particles must reach a target behind a wall of fixed
  obstacle particles with two slits (the world of ``double-slit``: the
  known-physics engine with a soft repulsion). What is learned is the
  group's launch velocities. The target sits behind the upper slit; launches
  aimed at the wall bounce back, and a launch through the lower slit is a
  local optimum (moving its aim up hits the wall between the slits).
* ``circle``: the path experiment (``train_path``): a learned universe moves
  a token group along a circle; plain gradients tend to stop at a chord.

Methods:

* ``particles``: deterministic velocity (``sigma = 0``);
* ``variational``: the seed's variational velocity (the task's ``sigma``);
* ``waves K,H``: a :class:`~sparse_universe.BranchManager` with K copies and
  H heads (same ``sigma``), trained on the measured positions;
* ``waves 4,4 copies`` (slits only): the same waves trained on the exact
  expectation of the loss over the measurement
  (:func:`~sparse_universe.wave_path_loss`), free of sampling noise.

Equal compute means an equal budget of simulated node-steps per seed
(moving graph nodes x time steps, summed over iterations; waves get K times
fewer iterations), or with ``--equal time`` an equal wall-clock budget
(``--seconds``, per seed for ``circle``; for ``slits`` all seeds train
together as independent universes of one batch, so per method). Every
result is evaluated the same way: deterministic, one copy per particle.
Success means the members end within one loss-sigma of their target on
average (particle-reading loss below ``d/2 log(2 pi) + 1/2``). Writes
``data/waves_vs_particles_<task>[_time].csv`` and ``.png``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..branching import BranchManager
from ..losses import path_loss, wave_path_loss
from ..physics import PairForceStep, SoftSphere
from ..simulate import rollout
from ..state import ParticleState
from . import command_main, number, write_csv
from . import double_slit as ds
from . import train_path as tp


class Method(NamedTuple):
    name: str
    noisy: bool  # noisy methods use the task's sigma
    copies: int  # K
    heads: int  # H
    on_copies: bool = False  # train on the expected loss over the copies (wave_path_loss), not a measurement


METHODS: Tuple[Method, ...] = (
    Method("particles", False, 1, 1),
    Method("variational", True, 1, 1),
    Method("waves 2,2", True, 2, 2),
    Method("waves 4,4", True, 4, 4),
)
#: The slits task also trains waves on their copies (its loss is one final position).
SLIT_METHODS = METHODS + (Method("waves 4,4 copies", True, 4, 4, True),)
TASKS = ("slits", "circle")
#: Simulated node-steps per seed and method: ~200 iterations of the particle universe of either task.
BUDGET = 1.5e5


@dataclass
class SlitTask:
    group: int = 8  # members per seed, launched from a 2 x 4 grid at the source
    spacing: float = 0.2  # of that grid (the members repel each other too)
    steps: int = 80  # T: about 3 units of flight at unit speed
    dt: float = 0.04
    aim: float = 0.5  # initial launch angles uniform in +-aim (radians), speed 1
    target: Tuple[float, float] = (1.5, 1.2)  # behind the upper slit
    loss_sigma: float = 0.5  # of the final-position loss (particle reading)
    sigma: float = 0.01  # velocity noise of the noisy methods (0.02 and 0.05 did worse)
    lr: float = 0.05  # Adam on the launch velocities
    world: ds.Config = field(default_factory=ds.Config)  # wall, slits and soft repulsion


#: The circle task, smaller than train_path's default so that many seeds fit.
CIRCLE = tp.Config(universes=2, particles=24, steps=16, iterations=0)
CIRCLE_SIGMA = 0.3


def success_threshold(dim: int) -> float:
    """Particle-reading loss of members one sigma from the target on average."""
    return 0.5 * dim * math.log(2 * math.pi) + 0.5


def _train(model, params: Sequence[Tensor], loss_fn, iterations: int, seconds: Optional[float],
           clip: Optional[float], lr: float) -> Tuple[int, float]:
    """Adam until ``iterations`` or the clock; returns iterations done and seconds."""
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    start, done = time.perf_counter(), 0
    while done < iterations or (seconds is not None and time.perf_counter() - start < seconds):
        done += 1
        opt.zero_grad()
        loss_fn().backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
    return done, time.perf_counter() - start


def run_circle(method: Method, seed: int, budget: float, cfg: tp.Config = CIRCLE,
               seconds: Optional[float] = None) -> dict:
    """Train one method on the circle task from one seed."""
    name, noisy, copies, heads, on_copies = method
    if on_copies:
        raise ValueError(f"The circle task trains on measured positions only (got method {name!r})")
    cfg = replace(cfg, seed=seed, sigma=CIRCLE_SIGMA if noisy else 0.0)
    state = tp.make_universes(cfg)
    step = tp.build_model(cfg)
    model = step if copies == heads == 1 else BranchManager(step, copies, heads, sigma=cfg.sigma)
    node_steps = cfg.universes * cfg.particles * cfg.steps * copies
    iterations = max(1, int(budget // node_steps)) if seconds is None else 0
    torch.manual_seed(seed + 1)
    done, seconds = _train(model, list(step.parameters()), lambda: tp.loss_of(model, state, cfg, "particle"),
                           iterations, seconds, cfg.clip, cfg.lr)
    final = tp.evaluate(step, state, cfg)
    return dict(task="circle", method=name, seed=seed, iterations=done, node_steps=done * node_steps,
                seconds=seconds, loss_particle=final["particle"], loss_density=final["density"],
                success=final["particle"] < success_threshold(cfg.dim))


def slit_universes(task: SlitTask, seeds: int) -> Tuple[ParticleState, Tensor, Tensor]:
    """One universe per seed: its wall and its group. Returns the state, member indices and launch velocities."""
    g = task.group
    grid = torch.stack(torch.meshgrid(torch.arange(2.0), torch.arange(g / 2), indexing="ij"), -1).view(-1, 2)
    grid = (grid - grid.mean(0)) * task.spacing + torch.tensor([task.world.source, 0.0])
    state, per_wall = ds.make_world(task.world, grid.expand(seeds, g, 2))
    angles = torch.cat([(2 * torch.rand(g, generator=torch.Generator().manual_seed(s)) - 1) * task.aim
                        for s in range(seeds)])
    members = torch.arange(seeds * per_wall, state.num_particles)
    return state, members, torch.stack([angles.cos(), angles.sin()], 1)


def run_slits(method: Method, seeds: int, budget: float, task: Optional[SlitTask] = None,
              seconds: Optional[float] = None) -> List[dict]:
    """Train one method on the two-slit task, all seeds at once (independent universes, elementwise Adam)."""
    task = task or SlitTask()
    name, noisy, copies, heads, on_copies = method
    state, members, launch = slit_universes(task, seeds)
    launch.requires_grad_()
    step = PairForceStep(SoftSphere(task.world.barrier, task.world.size), dt=task.dt,
                         sigma=task.sigma if noisy else 0.0)
    model = step if copies == heads == 1 else BranchManager(step, copies, heads)
    target = torch.tensor([task.target])

    def launched(model):
        return rollout(model, state.replace(vel=state.vel.index_put((members,), launch)), task.steps)

    def final_positions(model) -> Tensor:
        return launched(model).pos[-1:]

    def loss() -> Tensor:  # summed over seeds: each seed's launch gets its own gradient
        if on_copies:
            return seeds * wave_path_loss(launched(model).waves[-1:], target, members, task.loss_sigma,
                                          reading="particle")
        return seeds * path_loss(final_positions(model), target, members, task.loss_sigma, reading="particle")

    node_steps = task.group * task.steps * copies
    iterations = max(1, int(budget // node_steps)) if seconds is None else 0
    torch.manual_seed(0)
    done, seconds = _train(model, [launch], loss, iterations, seconds, None, task.lr)
    with torch.no_grad():
        final = final_positions(step.eval())
    rows = []
    for s, ids in enumerate(members.view(seeds, task.group)):
        value = float(path_loss(final, target, ids, task.loss_sigma, reading="particle"))
        rows.append(dict(task="slits", method=name, seed=s, iterations=done, node_steps=done * node_steps,
                         seconds=seconds, loss_particle=value, loss_density=math.nan,
                         success=value < success_threshold(2)))
    return rows


def run(task: str = "slits", seeds: int = 10, budget: float = BUDGET, methods: Optional[Sequence[Method]] = None,
        progress: bool = True, seconds: Optional[float] = None) -> List[dict]:
    if task not in TASKS:
        raise ValueError(f"Expected 'task' in {TASKS} (got {task!r})")
    if methods is None:
        methods = SLIT_METHODS if task == "slits" else METHODS
    if task == "slits":
        return [row for m in tqdm(methods, desc="waves-vs-particles", disable=not progress)
                for row in run_slits(m, seeds, budget, seconds=seconds)]
    jobs = [(m, s) for s in range(seeds) for m in methods]
    return [run_circle(m, s, budget, seconds=seconds)
            for m, s in tqdm(jobs, desc="waves-vs-particles", disable=not progress)]


def summary(rows: List[dict]) -> str:
    head = f"{'method':>16} {'runs':>4} {'success':>8} {'median loss':>11} {'IQR':>15} {'median s':>8}"
    lines = [head, "-" * len(head)]
    for name in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == name]
        losses = sorted(r["loss_particle"] for r in sel)
        q = statistics.quantiles(losses, n=4, method="inclusive") if len(losses) > 1 else [losses[0]] * 3
        lines.append(f"{name:>16} {len(sel):>4} {sum(r['success'] for r in sel) / len(sel):>8.0%} "
                     f"{statistics.median(losses):>11.3f} {f'{q[0]:.3f}-{q[2]:.3f}':>15} "
                     f"{statistics.median(r['seconds'] for r in sel):>8.1f}")
    return "\n".join(lines)


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--task", choices=TASKS, default="slits")
    parser.add_argument("--seeds", type=number(int, 1), default=10)
    parser.add_argument("--budget", type=number(float, 0, strict=True), default=BUDGET,
                        help="simulated node-steps per seed")
    parser.add_argument("--equal", choices=("node-steps", "time"), default="node-steps", help="what is held equal")
    parser.add_argument("--seconds", type=number(float, 0, strict=True), default=7.0,
                        help="wall-clock budget with --equal time")
    parser.add_argument("--out", type=Path, default=Path("data"))
    return parser


def outputs(args: argparse.Namespace) -> List[Path]:
    stem = f"waves_vs_particles_{args.task}" + ("_time" if args.equal == "time" else "")
    return [args.out / f"{stem}.csv", args.out / f"{stem}.png"]


def execute(args: argparse.Namespace) -> List[dict]:
    from ..viz import plot_methods

    seconds = args.seconds if args.equal == "time" else None
    rows = run(args.task, args.seeds, args.budget, seconds=seconds)
    csv_path, png_path = outputs(args)
    write_csv(rows, csv_path)
    budget = f"{seconds:g} s" if seconds is not None else f"{args.budget:g} node-steps per seed"
    plot_methods(rows, success_threshold(2), png_path, f"{args.task}: equal budget {budget}")
    print(summary(rows))
    print(f"wrote {csv_path} and {png_path}")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    return command_main("waves_vs_particles", argv)


if __name__ == "__main__":
    main()
