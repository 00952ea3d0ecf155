"""Train a universe so that one token group follows a curved path among the others.

Run it as::

    sparse-universe train                                   # full run, circle path
    python -m sparse_universe.experiments.train_path --path eight --iterations 400
    sparse-universe train            # interrupted (Ctrl-C, a lost machine) ...
    sparse-universe train --resume   # ... continues from data/train_path.pt to the same result
    sparse-universe train --resume --iterations 600   # extends a finished run (see ``train``)

A run never replaces an earlier one silently: if ``--out`` already holds a
checkpoint or results, it refuses unless ``--resume`` or ``--overwrite``.
Checkpoints are written atomically (temporary file, fsync, rename), so a run
killed at any moment resumes from the last complete one.

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

**Data-parallel** under ``torchrun`` (``torchrun --nproc-per-node P -m
sparse_universe.cli train ...``): each rank rolls out every P-th universe
and :class:`~torch.nn.parallel.DistributedDataParallel` averages the
gradients (each rank's loss is its universes' share of the mean, times P),
so with ``--sigma 0`` the parameters end equal, to float rounding, to one
process training on all universes; with sampling each rank draws its own
stream (seed + 1 + rank), an equivalent but not identical run. Rank 0 shows
progress and writes the checkpoint (with every rank's RNG state: a resume
needs the same P) and the results; a resume reads the checkpoint on rank 0
and broadcasts it, so the ranks need no shared disk.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import trange

from ..losses import path_loss
from ..monitors import EnergyDrift, GradNormExplosion, LossSpike, Monitor, TrainingStopped, check
from ..neighbors.checks import check_choice, check_int
from ..nn import UniverseStep
from ..simulate import rollout
from ..state import ParticleState, num_universes
from . import add_config_arguments, check_fields, command_main, config_from_args, number, write_csv


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

    def __post_init__(self) -> None:
        check_fields(self, positive=("dim", "universes", "particles", "num_tokens", "steps", "dt", "eps",
                                     "surrogate_radius", "hidden", "radius", "box", "lr", "clip"),
                     nonnegative=("iterations", "sigma", "blob", "seed", "spike_factor", "grad_limit", "drift_limit"))
        check_choice(self.path, "path", PATHS)
        check_choice(self.reading, "reading", ("particle", "density"))
        if self.dim < 2:
            raise ValueError(f"Expected 'dim' >= 2: the paths are drawn in the first two axes (got {self.dim})")
        if self.surrogate_radius <= self.eps:
            raise ValueError(f"Expected 'surrogate_radius' > eps={self.eps} (got {self.surrogate_radius})")


#: Fields that may change on ``--resume``: they do not change what was trained so far.
RESUMABLE = ("iterations", "spike_factor", "grad_limit", "drift_limit", "monitor_stop")
PATHS = ("circle", "eight")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be resumed from; the message names the file and why."""


def make_path(cfg: Config) -> Tensor:
    """``(T, d)`` offsets from the start, for t = 1 .. T (one full loop)."""
    theta = 2 * math.pi * torch.arange(1, cfg.steps + 1, dtype=torch.float32) / cfg.steps
    if cfg.path == "circle":
        xy = torch.stack([torch.cos(theta) - 1, torch.sin(theta)], 1)
    else:  # "eight" (Config accepts no other)
        xy = torch.stack([torch.sin(theta), torch.sin(theta) * torch.cos(theta)], 1)
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
                             for b in range(num_universes(state))])
    return centroids[:, None, :] + offsets[None]


def loss_of(model: UniverseStep, state: ParticleState, cfg: Config, reading: str = "density",
            trajectory: Optional[list] = None) -> Tensor:
    """The path loss of one rollout (appended to ``trajectory`` if given): the sum over ``state``'s universes
    divided by ``cfg.universes``, i.e. their mean, or a :func:`shard`'s share of it."""
    traj = rollout(model, state, cfg.steps)
    if trajectory is not None:
        trajectory.append(traj)
    paths = targets(state, cfg)
    losses = [path_loss(traj.pos, paths[b], (state.batch == b) & (state.token == 0), reading=reading)
              for b in range(num_universes(state))]
    return torch.stack(losses).sum() / cfg.universes


def shard(state: ParticleState, rank: int, world: int) -> ParticleState:
    """Universes ``rank, rank + world, ...`` of ``state``, renumbered from 0."""
    ids = torch.arange(rank, num_universes(state), world)
    part = state.select(torch.isin(state.batch, ids).nonzero().view(-1))
    return part.replace(batch=torch.searchsorted(ids, part.batch))


def monitors_of(cfg: Config, history: Sequence[dict] = ()) -> List[Monitor]:
    """The monitors the config asks for (a limit of 0 turns one off), primed with a resumed run's ``history``."""
    out: List[Monitor] = []
    if cfg.spike_factor:
        out.append(LossSpike(cfg.spike_factor, stop=cfg.monitor_stop))
        out[-1].recent.extend(h["loss"] for h in history)
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


def cosine(iteration: int, total: int) -> float:
    """Learning-rate factor: a cosine from 1 at iteration 0 to 0 at ``total``."""
    return 0.5 * (1.0 + math.cos(math.pi * min(iteration, total) / max(total, 1)))


def train(cfg: Config, checkpoint: Optional[Path] = None, resume: bool = False, progress: bool = True,
          save_every: int = 25) -> List[dict]:
    """Train, saving to ``checkpoint`` as we go; with ``resume``, continue from it.

    A resumed run ends with exactly the parameters of an uninterrupted one.
    ``iterations`` (and the monitor limits) may differ from the checkpoint's: a
    finished run is extended by resuming it with a larger ``iterations``. The
    cosine learning-rate schedule then stretches to the new total, so the rate
    rises again from where it ended (the result differs from a run started
    with the larger count).

    In an initialised process group of P > 1 ranks it trains data-parallel
    (see the module); every rank calls it, and only rank 0 shows progress and
    writes the checkpoint.
    """
    save_every = check_int(save_every, "save_every", 1)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    state = shard(make_universes(cfg), rank, world)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: cosine(it, cfg.iterations))
    history: List[dict] = []
    start = 0
    torch.manual_seed(cfg.seed + 1 + rank)  # the sampling stream
    if resume:
        saved = _load_on_rank0(checkpoint, cfg, rank, world)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"] if world == 1 else saved["rng"][rank].clone())  # a row view crashes it
        start, history = saved["iteration"], saved["history"]
        for group, base in zip(opt.param_groups, sched.base_lrs):  # the (possibly stretched) schedule
            group["lr"] = base * cosine(start, cfg.iterations)
    model.train()
    replicas = DistributedDataParallel(model) if world > 1 else model  # averages gradients over the ranks
    monitors = monitors_of(cfg, history)
    progress = progress and rank == 0
    for it in trange(start, cfg.iterations, desc="train", initial=start, total=cfg.iterations, disable=not progress):
        rng = torch.get_rng_state()  # saved on a monitor stop: a resume replays this iteration exactly
        opt.zero_grad()
        rolled: list = []
        loss = loss_of(replicas, state, cfg, cfg.reading, rolled)
        (loss * world).backward()  # DDP averages: the mean of the shares times P is the mean loss's gradient
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)  # rollouts can explode gradients
        totals = torch.cat([loss.detach()[None], 0.5 * (rolled[0].vel.detach() ** 2).sum((1, 2))])
        if world > 1:  # every rank sees the same loss and energy, so monitors decide alike
            dist.all_reduce(totals)
        energy = totals[1:]  # unit masses, no potential: kinetic
        try:
            check(monitors, dict(iteration=it + 1, loss=totals[0].item(), grad_norm=float(norm), energy=energy))
        except TrainingStopped as stop:
            rng = _rng_states(world, rng)  # every rank stops here together
            if checkpoint is not None and rank == 0:
                save(checkpoint, model, opt, sched, it, history, cfg, rng)
            if rank == 0:
                print(f"training stopped: {stop}")
            break
        opt.step()
        sched.step()
        history.append({"iteration": it + 1, "loss": totals[0].item(), "grad_norm": float(norm)})
        if checkpoint is not None and ((it + 1) % save_every == 0 or it + 1 == cfg.iterations):
            rng = _rng_states(world, torch.get_rng_state())
            if rank == 0:
                save(checkpoint, model, opt, sched, it + 1, history, cfg, rng)
    if world > 1:
        dist.barrier()  # the checkpoint is written before any rank reads it
    return history


def _rng_states(world: int, mine: Tensor) -> Tensor:
    """``mine`` (this process's RNG state), or every rank's stacked ``(P, S)`` (a collective) when P > 1."""
    if world == 1:
        return mine
    states = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(states, mine)
    return torch.stack(states)


def _load_on_rank0(checkpoint: Optional[Path], cfg: Config, rank: int, world: int) -> dict:
    """The checkpoint, read by rank 0 and broadcast (the ranks need no shared disk); errors raise on every rank."""
    found: list = [None]
    if rank == 0:
        try:
            if checkpoint is None or not checkpoint.exists():
                raise FileNotFoundError(f"Nothing to resume: no checkpoint at {checkpoint}")
            found[0] = load_checkpoint(checkpoint, cfg)
            rng = found[0]["rng"]
            ranks = 1 if rng.dim() == 1 else rng.size(0)
            if ranks != world:
                raise CheckpointError(f"checkpoint {checkpoint} was written by {ranks} process(es), this run has "
                                      f"{world}: resume with the same number (every rank's sampling stream is "
                                      f"saved)")
        except Exception as e:
            found[0] = e
    if world > 1:
        dist.broadcast_object_list(found)
    if isinstance(found[0], Exception):
        raise found[0]
    return found[0]


def save(path: Path, model: UniverseStep, opt: torch.optim.Optimizer, sched, iteration: int,
         history: List[dict], cfg: Config, rng: Tensor) -> None:
    """Write a checkpoint atomically: a kill at any moment leaves the previous one or this one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "rng": rng, "iteration": iteration, "history": history, "config": asdict(cfg)}, f)
        f.flush()
        os.fsync(f.fileno())  # the bytes are on disk before the name points at them
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # and the rename itself survives a crash
    finally:
        os.close(folder)


def load_checkpoint(path: Path, cfg: Optional[Config] = None) -> dict:
    """Read a checkpoint of :func:`train`; a bad file raises :class:`CheckpointError` in one line.

    With ``cfg``, the checkpoint's config must match it, except for :data:`RESUMABLE`
    fields; the error names every field that differs, with both values.
    """
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): it was never written; start afresh with "
                              f"--overwrite")
    try:
        saved = torch.load(path, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, a folder: all one message
        reason = " ".join(str(e).split()).split(". ")[0][:120]
        raise CheckpointError(f"checkpoint {path} is not readable: it is truncated or was not written by "
                              f"sparse-universe train ({type(e).__name__}: {reason})") from e
    missing = [k for k in ("model", "optimizer", "scheduler", "rng", "iteration", "history", "config")
               if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a sparse-universe train checkpoint (no "
                              f"{', '.join(missing)})")
    if cfg is not None:
        mine = asdict(cfg)
        differ = [f"{k}: checkpoint {saved['config'].get(k)!r}, now {v!r}" for k, v in mine.items()
                  if k not in RESUMABLE and saved["config"].get(k) != v]
        if differ:
            raise CheckpointError(f"checkpoint {path} was made with another config ({'; '.join(differ)}); pass the "
                                  f"same options to resume, or --overwrite to start afresh")
        if saved["iteration"] > cfg.iterations:
            raise CheckpointError(f"checkpoint {path} is at iteration {saved['iteration']}, beyond --iterations "
                                  f"{cfg.iterations}; pass --iterations >= {saved['iteration']}")
    return saved


def load_model(path: Path, cfg: Config) -> UniverseStep:
    model = build_model(cfg)
    model.load_state_dict(load_checkpoint(path)["model"])
    return model


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_config_arguments(parser, Config)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: OUT/train_path.pt")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint (a larger --iterations extends a finished run)")
    parser.add_argument("--save-every", type=number(int, 1), default=25, help="iterations between checkpoints")
    parser.add_argument("--out", type=Path, default=Path("data"))
    return parser


def outputs(args: argparse.Namespace) -> List[Path]:
    """The checkpoint first, then the results; ``--resume`` may replace them."""
    return [args.checkpoint or args.out / "train_path.pt",
            *(args.out / name for name in ("train_path.csv", "train_path_loss.png", "train_path_trajectories.png"))]


def execute(args: argparse.Namespace) -> dict:
    cfg = config_from_args(Config, args)
    check_int(cfg.iterations, "iterations", 1)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 or dist.is_initialized():
        return _execute(cfg, args)
    dist.init_process_group("gloo")  # under torchrun: data-parallel over the universes
    try:
        if dist.get_rank() > 0:  # a replica: rank 0 reports
            train(cfg, outputs(args)[0], args.resume, save_every=args.save_every)
            return {}
        return _execute(cfg, args)
    finally:
        dist.destroy_process_group()


def _execute(cfg: Config, args: argparse.Namespace) -> dict:
    from ..viz import plot_training

    state = make_universes(cfg)
    before = evaluate(build_model(cfg), state, cfg)
    checkpoint = outputs(args)[0]
    history = train(cfg, checkpoint, args.resume, save_every=args.save_every)
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
