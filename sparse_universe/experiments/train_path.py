"""Train a universe so that one token group follows a curved path among the others.

Run it as::

    sparse-universe train                                   # full run, circle path
    python -m sparse_universe.experiments.train_path --path eight --iterations 400
    sparse-universe train            # interrupted (Ctrl-C, a lost machine) ...
    sparse-universe train --resume   # ... continues from data/train_path.pt to the same result

Several universes (``batch``) of ``particles`` each hold three token types.
The members (token 0) should carry the path, which starts at their initial
centroid (the seed's update is translation-invariant, so the path is anchored
to the group, not to a fixed place). The loss is the seed's objective in the
density reading (:func:`~sparse_universe.path_loss`). A checkpoint holds the
model, the optimiser, the RNG state, the iteration and the loss history, so an
interrupted run resumes to exactly the result of an uninterrupted one.
Monitors (:mod:`sparse_universe.monitors`) watch every iteration for loss
spikes, gradient-norm explosions and, with ``--drift-limit``, drift of the
rollout's kinetic energy; they warn, or with ``--monitor-stop true`` stop
the run with their message after saving the checkpoint.
Writes ``train_path.csv``, ``train_path_loss.png`` and
``train_path_trajectories.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch import Tensor
from tqdm.auto import trange

from ..losses import path_loss
from ..monitors import EnergyDrift, GradNormExplosion, LossSpike, Monitor, TrainingStopped, check
from ..nn import UniverseStep
from ..simulate import rollout
from ..state import ParticleState
from . import add_config_arguments, command_main, config_from_args, write_csv


@dataclass
class Config:
    dim: int = 2  # spatial dimension
    universes: int = 4  # universes trained together in one batch
    particles: int = 48  # particles per universe
    num_tokens: int = 3  # token types; token 0 is the group that follows the path
    steps: int = 32  # rollout length T
    dt: float = 0.1  # time quantum
    eps: float = 0.5  # collision distance
    surrogate_radius: float = 1.0  # straight-through surrogate radius
    hidden: int = 32  # width of messages and MLPs
    sigma: float = 0.02  # variational velocity std during training
    self_features: bool = True  # MLP2 sees the particle's own spin and token (members can move unlike obstacles)
    radius: float = 2.0  # size of the path
    path: str = "circle"  # "circle" or "eight"
    box: float = 6.0  # obstacles start uniform in [-box/2, box/2]^d
    blob: float = 0.3  # members start as a Gaussian blob of this std
    iterations: int = 300  # optimiser steps
    lr: float = 1e-3  # Adam learning rate (3e-3 diverged on some initialisations)
    clip: float = 1.0  # gradient-norm clip
    reading: str = "particle"  # training objective: "particle" (every member) or "density" (the group's region)
    seed: int = 0  # seeds the universes, the model and the sampling
    spike_factor: float = 10.0  # monitor: loss above this x the recent median (0: off)
    grad_limit: float = 1e4  # monitor: gradient norm before clipping (0: off)
    drift_limit: float = 0.0  # monitor: relative kinetic-energy drift over a rollout (0: off)
    monitor_stop: bool = False  # monitors stop the run (saving the checkpoint) instead of warning


def make_path(cfg: Config) -> Tensor:
    """``(T, d)`` offsets from the start, for t = 1 .. T (one full loop)."""
    theta = 2 * math.pi * torch.arange(1, cfg.steps + 1, dtype=torch.float32) / cfg.steps
    if cfg.path == "circle":
        xy = torch.stack([torch.cos(theta) - 1, torch.sin(theta)], 1)
    elif cfg.path == "eight":
        xy = torch.stack([torch.sin(theta), torch.sin(theta) * torch.cos(theta)], 1)
    else:
        raise ValueError(f"Expected 'path' to be 'circle' or 'eight' (got {cfg.path!r})")
    out = torch.zeros(cfg.steps, cfg.dim)
    out[:, :2] = cfg.radius * xy
    return out


def make_universes(cfg: Config) -> ParticleState:
    """Members (token 0) start as a blob; the other tokens are scattered obstacles."""
    g = torch.Generator().manual_seed(cfg.seed)
    n = cfg.universes * cfg.particles
    pos = (torch.rand(n, cfg.dim, generator=g) - 0.5) * cfg.box
    token = torch.arange(n) % cfg.num_tokens
    members = token == 0
    start = (torch.rand(cfg.universes, cfg.dim, generator=g) - 0.5) * cfg.box / 2  # (universes, d)
    blob = cfg.blob * torch.randn(int(members.sum()), cfg.dim, generator=g)
    pos[members] = start[(torch.arange(n) // cfg.particles)[members]] + blob
    spin = torch.randn(n, cfg.dim, generator=g)
    batch = torch.arange(n) // cfg.particles
    return ParticleState(pos, spin=spin, token=token, batch=batch, num_tokens=cfg.num_tokens)


def build_model(cfg: Config) -> UniverseStep:
    torch.manual_seed(cfg.seed)
    return UniverseStep(cfg.dim, cfg.num_tokens, cfg.hidden, cfg.eps, dt=cfg.dt, sigma=cfg.sigma,
                        surrogate="radius", surrogate_radius=cfg.surrogate_radius, inertia=True,
                        self_features=cfg.self_features)


def targets(state: ParticleState, cfg: Config) -> Tensor:
    """``(universes, T, d)``: the path anchored at each universe's member centroid."""
    offsets = make_path(cfg)
    centroids = torch.stack([state.pos[(state.batch == b) & (state.token == 0)].mean(0)
                             for b in range(cfg.universes)])
    return centroids[:, None, :] + offsets[None]


def loss_of(model: UniverseStep, state: ParticleState, cfg: Config, reading: str = "density",
            trajectory: Optional[list] = None) -> Tensor:
    """The path loss of one rollout (appended to ``trajectory`` if given)."""
    traj = rollout(model, state, cfg.steps)
    if trajectory is not None:
        trajectory.append(traj)
    paths = targets(state, cfg)
    losses = [path_loss(traj.pos, paths[b], (state.batch == b) & (state.token == 0), reading=reading)
              for b in range(cfg.universes)]
    return torch.stack(losses).mean()


def monitors_of(cfg: Config) -> List[Monitor]:
    """The monitors the config asks for (a limit of 0 turns one off)."""
    out: List[Monitor] = []
    if cfg.spike_factor:
        out.append(LossSpike(cfg.spike_factor, stop=cfg.monitor_stop))
    if cfg.grad_limit:
        out.append(GradNormExplosion(cfg.grad_limit, stop=cfg.monitor_stop))
    if cfg.drift_limit:
        out.append(EnergyDrift(cfg.drift_limit, stop=cfg.monitor_stop))
    return out


def evaluate(model: UniverseStep, state: ParticleState, cfg: Config) -> dict:
    """Deterministic (eval-mode) loss in both readings."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = {r: float(loss_of(model, state, cfg, r)) for r in ("density", "particle")}
    model.train(was_training)
    return out


def train(cfg: Config, checkpoint: Optional[Path] = None, resume: bool = False, progress: bool = True,
          save_every: int = 25) -> List[dict]:
    """Train, saving to ``checkpoint`` as we go; with ``resume``, continue from it."""
    state = make_universes(cfg)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.iterations, 1))
    history: List[dict] = []
    start = 0
    torch.manual_seed(cfg.seed + 1)  # the sampling stream
    if resume:
        if checkpoint is None or not checkpoint.exists():
            raise FileNotFoundError(f"Nothing to resume: no checkpoint at {checkpoint}")
        saved = torch.load(checkpoint, weights_only=False)
        if saved["config"] != asdict(cfg):
            raise ValueError(f"Checkpoint {checkpoint} was made with another config: {saved['config']}")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        start, history = saved["iteration"], saved["history"]
    model.train()
    monitors = monitors_of(cfg)
    for it in trange(start, cfg.iterations, desc="train", initial=start, total=cfg.iterations, disable=not progress):
        opt.zero_grad()
        rolled: list = []
        loss = loss_of(model, state, cfg, cfg.reading, rolled)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)  # rollouts can explode gradients
        energy = 0.5 * (rolled[0].vel.detach() ** 2).sum((1, 2))  # unit masses, no potential: kinetic
        try:
            check(monitors, dict(iteration=it + 1, loss=loss.item(), grad_norm=float(norm), energy=energy))
        except TrainingStopped as stop:
            if checkpoint is not None:
                save(checkpoint, model, opt, sched, it, history, cfg)
            print(f"training stopped: {stop}")
            break
        opt.step()
        sched.step()
        history.append({"iteration": it + 1, "loss": loss.item(), "grad_norm": float(norm)})
        if checkpoint is not None and ((it + 1) % save_every == 0 or it + 1 == cfg.iterations):
            save(checkpoint, model, opt, sched, it + 1, history, cfg)
    return history


def save(path: Path, model: UniverseStep, opt: torch.optim.Optimizer, sched, iteration: int,
         history: List[dict], cfg: Config) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": torch.get_rng_state(),
                "iteration": iteration, "history": history, "config": asdict(cfg)}, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint


def load_model(path: Path, cfg: Config) -> UniverseStep:
    model = build_model(cfg)
    model.load_state_dict(torch.load(path, weights_only=False)["model"])
    return model


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_config_arguments(parser, Config)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: OUT/train_path.pt")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--out", type=Path, default=Path("data"))
    return parser


def execute(args: argparse.Namespace) -> dict:
    from ..viz import plot_training

    cfg = config_from_args(Config, args)
    state = make_universes(cfg)
    before = evaluate(build_model(cfg), state, cfg)
    checkpoint = args.checkpoint or args.out / "train_path.pt"
    history = train(cfg, checkpoint, args.resume)
    model = load_model(checkpoint, cfg)
    after = evaluate(model, state, cfg)
    write_csv(history, args.out / "train_path.csv")
    model.eval()
    with torch.no_grad():
        trained = rollout(model, state, cfg.steps).pos
        untrained = rollout(build_model(cfg).eval(), state, cfg.steps).pos
    plot_training(history, untrained, trained, state, targets(state, cfg), args.out)
    print(f"path loss (density reading)  untrained {before['density']:.3f} -> trained {after['density']:.3f}")
    print(f"path loss (particle reading) untrained {before['particle']:.3f} -> trained {after['particle']:.3f}")
    print(f"wrote {args.out / 'train_path.csv'}, train_path_loss.png, train_path_trajectories.png")
    return {"before": before, "after": after}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    return command_main("train_path", argv)


if __name__ == "__main__":
    main()
