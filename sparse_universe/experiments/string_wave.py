"""Seed 002's string: a transverse pulse on a chain of springs, and the whip.

Run it as::

    sparse-universe string                       # 801 particles, uniform string and whip
    python -m sparse_universe.experiments.string_wave --particles 2001 --width 30

A chain of particles along ``x`` at spacing ``a``, joined by springs
(:class:`~sparse_universe.physics.Harmonic`, stiffness ``k``, rest length
``l0 < a``), both ends ``fixed``: a string of tension ``T = k (a - l0)`` and
linear density ``mu = m / a``. A Gaussian bump of ``y`` released at rest
splits into two pulses moving at ``c = sqrt(T / mu)``. The right-moving
peak is tracked (parabolic refinement around the maximum) and its speed
fitted; velocity Verlet integrates.

The whip tapers the mass linearly to ``(1 - taper) m`` at the right end: the
tension stays uniform, ``mu`` falls, and the pulse speeds up toward the tip
as ``c(x) = sqrt(T / mu(x))``. Writes ``data/string_wave.csv`` (measured and
predicted speed along the string, both cases) and ``data/string_wave.png``
(space-time heatmaps and the speeds).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..physics import Harmonic, PairForceStep, chain
from ..simulate import rollout
from ..state import ParticleState
from . import check_fields, command_main, config_from_args, config_parser, write_csv


@dataclass
class Config:
    particles: int = 801
    spacing: float = 1.0  # a
    stiffness: float = 100.0  # k
    rest_length: float = 0.5  # l0: tension T = k (a - l0)
    mass: float = 1.0  # m at the left end
    taper: float = 0.95  # whip: mass falls linearly to (1 - taper) m at the right end
    amplitude: float = 0.5
    width: float = 15.0  # std of the initial bump, in units of x
    start: float = 0.25  # bump centre, as a fraction of the length
    dt: float = 0.005
    record_every: int = 20

    def __post_init__(self) -> None:
        check_fields(self, positive=("particles", "spacing", "stiffness", "mass", "width", "dt", "record_every"),
                     nonnegative=("rest_length", "taper", "amplitude", "start"))


def tension(cfg: Config) -> float:
    return cfg.stiffness * (cfg.spacing - cfg.rest_length)


def masses(cfg: Config, tapered: bool) -> Tensor:
    s = torch.linspace(0, 1, cfg.particles, dtype=torch.float64)
    return cfg.mass * (1 - cfg.taper * s) if tapered else torch.full_like(s, cfg.mass)


def theory_speed(cfg: Config, mass: Tensor) -> Tensor:
    """``sqrt(T / mu)`` per particle."""
    return torch.sqrt(tension(cfg) / (mass / cfg.spacing))


def make_string(cfg: Config, tapered: bool) -> Tuple[ParticleState, PairForceStep]:
    x = torch.arange(cfg.particles, dtype=torch.float64) * cfg.spacing
    centre = cfg.start * x[-1]
    y = cfg.amplitude * torch.exp(-0.5 * ((x - centre) / cfg.width) ** 2)
    fixed = torch.zeros(cfg.particles, dtype=torch.bool)
    fixed[[0, -1]] = True
    y[fixed] = 0
    state = ParticleState(torch.stack([x, y], 1), fixed=fixed, mass=masses(cfg, tapered))
    step = PairForceStep(dt=cfg.dt, bonds=chain(cfg.particles), bond=Harmonic(cfg.stiffness, cfg.rest_length))
    return state, step


def simulate(cfg: Config, tapered: bool, duration: float, progress: bool = False) -> Tuple[Tensor, Tensor, Tensor]:
    """Times ``(R,)``, rest positions ``x`` ``(N,)`` and displacements ``y`` ``(R, N)``, every ``record_every``."""
    state, step = make_string(cfg, tapered)
    x0 = state.pos[:, 0].clone()
    records = max(1, round(duration / (cfg.dt * cfg.record_every)))
    ys = [state.pos[:, 1].clone()]
    with torch.no_grad():
        for _ in tqdm(range(records), desc="string", disable=not progress, leave=False):
            state = rollout(step, state, cfg.record_every, integrator="verlet", horizon=None).final
            ys.append(state.pos[:, 1].clone())
    times = torch.arange(records + 1, dtype=torch.float64) * cfg.dt * cfg.record_every
    return times, x0, torch.stack(ys)


def track_peak(x: Tensor, y: Tensor, beyond: float) -> Tensor:
    """The maximum of each row of ``y`` over ``x > beyond``, refined by a parabola through its neighbours."""
    right = (x > beyond).nonzero().view(-1)
    i = right[y[:, right].argmax(1)].clamp(1, x.numel() - 2)
    rows = torch.arange(y.size(0))
    y0, y1, y2 = y[rows, i - 1], y[rows, i], y[rows, i + 1]
    curvature = y0 - 2 * y1 + y2
    shift = torch.where(curvature < 0, 0.5 * (y0 - y2) / curvature, torch.zeros_like(y1)).clamp(-1, 1)
    return x[i] + shift * (x[1] - x[0])


def measure(cfg: Config, tapered: bool, progress: bool = False) -> dict:
    """Simulate, track the right-moving pulse while it is clear of its twin and the far end."""
    length = (cfg.particles - 1) * cfg.spacing
    centre, end = cfg.start * length, length - 4 * cfg.width
    c = theory_speed(cfg, masses(cfg, tapered))
    x = torch.arange(cfg.particles, dtype=torch.float64) * cfg.spacing
    ahead = x >= centre
    duration = float(torch.trapezoid(1 / c[ahead], x[ahead]))  # time to reach the far end at the local speed
    times, x, y = simulate(cfg, tapered, duration, progress)
    peak = track_peak(x, y, centre)
    arrived = (peak >= end).nonzero()
    until = times[arrived[0, 0]] if arrived.numel() else math.inf  # before the pulse meets the far end
    use = (times > 4 * cfg.width / float(c[ahead][0])) & (times < until)  # after the two halves separated
    return dict(times=times[use], peak=peak[use], x=x, y=y, all_times=times, theory=c)


def fit_speed(times: Tensor, peak: Tensor) -> float:
    """Least-squares slope of the peak's position against time."""
    t = times - times.mean()
    return float((t * (peak - peak.mean())).sum() / (t * t).sum())


def local_speeds(cfg: Config, result: dict, bins: int = 8) -> List[dict]:
    """Measured speed in ``bins`` stretches of the track against ``sqrt(T / mu)`` at their middle."""
    times, peak, c = result["times"], result["peak"], result["theory"]
    edges = torch.linspace(float(peak.min()), float(peak.max()), bins + 1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (peak >= lo) & (peak <= hi)
        if int(sel.sum()) < 3:
            continue
        middle = float(peak[sel].mean())
        index = min(max(round(middle / cfg.spacing), 0), cfg.particles - 1)
        rows.append(dict(x=middle, measured=fit_speed(times[sel], peak[sel]), predicted=float(c[index])))
    return rows


build_parser = config_parser(Config)


def outputs(args: argparse.Namespace) -> List[Path]:
    return [args.out / "string_wave.csv", args.out / "string_wave.png"]


def execute(args: argparse.Namespace) -> List[dict]:
    from ..viz import plot_string

    cfg = config_from_args(Config, args)
    results, rows = {}, []
    for name, tapered in (("uniform", False), ("whip", True)):
        results[name] = measure(cfg, tapered, progress=True)
        for row in local_speeds(cfg, results[name]):
            rows.append(dict(case=name, **row, error=row["measured"] / row["predicted"] - 1))
    uniform = fit_speed(results["uniform"]["times"], results["uniform"]["peak"])
    expected = math.sqrt(tension(cfg) / (cfg.mass / cfg.spacing))
    path, png = outputs(args)
    write_csv(rows, path)
    plot_string(results, rows, png)
    print(f"uniform string: measured c = {uniform:.4f}, sqrt(T/mu) = {expected:.4f} "
          f"(error {100 * (uniform / expected - 1):+.3f}%)")
    whip = [r for r in rows if r["case"] == "whip"]
    print(f"whip: speed {whip[0]['measured']:.3g} near x = {whip[0]['x']:.0f} -> {whip[-1]['measured']:.3g} near "
          f"x = {whip[-1]['x']:.0f} (predicted {whip[0]['predicted']:.3g} -> {whip[-1]['predicted']:.3g}); "
          f"largest local error {100 * max(abs(r['error']) for r in whip):.2f}%")
    print(f"wrote {path} and {png}")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    return command_main("string_wave", argv)


if __name__ == "__main__":
    main()
