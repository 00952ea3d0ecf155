"""Double slit: a wave of copies through two slits onto a screen.

Run it as::

    sparse-universe double-slit                          # 1000 particles, waves K = 8, H = 4
    python -m sparse_universe.experiments.double_slit --particles 4000 --copies 8 --heads 2

The world is the known-physics engine (:class:`~sparse_universe.physics.PairForceStep`
with a soft repulsion, :class:`~sparse_universe.physics.SoftSphere`): a wall of ``fixed`` particles at ``x = 0``
with two slits, particles sent at it from a point source at ``(-1.5, 0)``
(aimed between the slits) at unit speed, and a screen at ``x = 1.5``. Every particle flies in its own universe
(its own copy of the wall), so particles never meet; only a particle's copies
and the wall do. Each step adds the seed's velocity noise (``sigma``).

Two runs from the same beam: classical particles (one copy each) and waves
(a :class:`~sparse_universe.BranchManager` with ``K`` copies and ``H`` heads).
A particle's screen hit is where its *measured* position first crosses the
screen (linear interpolation between steps). Writes ``data/double_slit.csv``
(one row per particle and run) and ``data/double_slit.png`` (a wave's copies
at a few times; the two screen histograms).

What to expect, and why: copies carry positive scores and no phase, so there
is nothing to cancel and no interference fringes. The seed's entangling rule
raises the scores of copies in contact with the wall, so pruning keeps the
copies pushing into it and drops those already reflected, and measurement
favours them too. Waves therefore cross the wall's soft barrier where
classical particles bounce: a tunnelling-like selection effect, visible as
hits between the slits' images (README has the measured numbers).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..branching import BranchManager
from ..physics import PairForceStep, SoftSphere
from ..simulate import Trajectory, rollout
from ..state import ParticleState
from . import check_fields, command_main, config_from_args, config_parser, write_csv


@dataclass
class Config:
    particles: int = 1000
    copies: int = 8  # K
    heads: int = 4  # H
    steps: int = 200
    dt: float = 0.02
    sigma: float = 0.06  # velocity noise per step
    wall_spacing: float = 0.1
    wall_half_height: float = 2.5
    slit_centre: float = 0.6  # slits at y = +-slit_centre
    slit_width: float = 0.6
    size: float = 0.2  # range of the soft repulsion between particle and wall
    barrier: float = 1.0  # its energy at contact (the beam's kinetic energy is 0.5)
    source: float = -1.5
    beam_half_width: float = 0.0  # 0: a point source aimed between the slits
    screen: float = 1.5
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, positive=("particles", "copies", "heads", "steps", "dt", "wall_spacing",
                                     "wall_half_height", "slit_width", "size"),
                     nonnegative=("sigma", "slit_centre", "barrier", "beam_half_width", "seed"))


def make_world(cfg: Config, beam: Tensor) -> Tuple[ParticleState, int]:
    """Universe ``u`` holds a wall and the particles at ``beam[u]`` ``(U, G, 2)``, at rest.

    Returns the state (every wall first, then the beam particles in universe
    order) and the number of wall particles per universe.
    """
    y = torch.arange(-cfg.wall_half_height, cfg.wall_half_height + 1e-9, cfg.wall_spacing)
    wall_y = y[(y.abs() - cfg.slit_centre).abs() > cfg.slit_width / 2]
    (universes, group, _), per_wall = beam.shape, wall_y.numel()
    wall = torch.stack([torch.zeros(per_wall), wall_y], 1).repeat(universes, 1)
    ids = torch.arange(universes)
    batch = torch.cat([ids.repeat_interleave(per_wall), ids.repeat_interleave(group)])
    fixed = torch.arange(batch.numel()) < universes * per_wall
    return ParticleState(torch.cat([wall, beam.reshape(-1, 2)]), batch=batch, fixed=fixed), per_wall


def make_beam(cfg: Config) -> Tuple[ParticleState, int]:
    """One particle per universe from the source, ``y`` uniform in +-``beam_half_width``, at unit speed."""
    g = torch.Generator().manual_seed(cfg.seed)
    y = (2 * torch.rand(cfg.particles, generator=g) - 1) * cfg.beam_half_width
    state, per_wall = make_world(cfg, torch.stack([torch.full_like(y, cfg.source), y], 1)[:, None])
    vel = state.vel.clone()
    vel[cfg.particles * per_wall:, 0] = 1.0
    return state.replace(vel=vel), per_wall


def screen_hits(pos: Tensor, screen: float) -> Tensor:
    """``y`` where each path ``(T + 1, N, 2)`` first crosses ``x = screen`` (NaN if never)."""
    x, y = pos[..., 0], pos[..., 1]
    after = x >= screen
    reached = after.any(0)
    t = torch.where(reached, after.float().argmax(0), torch.ones_like(reached, dtype=torch.long))
    t = t.clamp_min(1)  # x starts before the screen
    cols = torch.arange(pos.size(1))
    x0, x1, y0, y1 = x[t - 1, cols], x[t, cols], y[t - 1, cols], y[t, cols]
    frac = ((screen - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0, 1)
    return torch.where(reached, y0 + frac * (y1 - y0), torch.nan)


def run(cfg: Config, progress: bool = True) -> Tuple[List[dict], Trajectory]:
    """Both runs; rows per particle and the wave trajectory (for the figure)."""
    state, per_wall = make_beam(cfg)
    beam = slice(cfg.particles * per_wall, None)
    step = PairForceStep(SoftSphere(cfg.barrier, cfg.size), dt=cfg.dt, sigma=cfg.sigma).train()
    rows, wave_traj = [], None
    for name, model in (("particles", step), (f"waves {cfg.copies},{cfg.heads}",
                                              BranchManager(step, cfg.copies, cfg.heads).train())):
        torch.manual_seed(cfg.seed + 1)
        start = time.perf_counter()
        with torch.no_grad():
            traj = rollout(model, state, cfg.steps, progress=progress)
        seconds = time.perf_counter() - start
        hits = screen_hits(traj.pos[:, beam], cfg.screen)
        final_x = traj.pos[-1, beam, 0]
        for i in range(cfg.particles):
            rows.append(dict(method=name, particle=i, y_source=float(state.pos[beam][i, 1]),
                             y_screen=float(hits[i]), reached=bool(hits[i].isfinite()),
                             reflected=bool(final_x[i] < 0), seconds=seconds))
        if traj.waves is not None:
            wave_traj = traj
    return rows, wave_traj


def summary(rows: List[dict]) -> str:
    lines = [f"{'method':>12} {'reached screen':>14} {'reflected':>9} {'seconds':>8}"]
    for name in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == name]
        lines.append(f"{name:>12} {sum(r['reached'] for r in sel) / len(sel):>14.1%} "
                     f"{sum(r['reflected'] for r in sel) / len(sel):>9.1%} {sel[0]['seconds']:>8.1f}")
    return "\n".join(lines)


build_parser = config_parser(Config)


def outputs(args: argparse.Namespace) -> List[Path]:
    return [args.out / "double_slit.csv", args.out / "double_slit.png"]


def execute(args: argparse.Namespace) -> List[dict]:
    from ..viz import plot_double_slit

    cfg = config_from_args(Config, args)
    rows, wave = run(cfg)
    path, png = outputs(args)
    write_csv(rows, path)
    plot_double_slit(rows, wave, cfg, png)
    print(summary(rows))
    print(f"wrote {path} and {png}")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    return command_main("double_slit", argv)


if __name__ == "__main__":
    main()
