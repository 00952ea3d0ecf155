"""Figures (matplotlib, saved as PNG)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_scaling(rows: Sequence, path: Path) -> Path:
    """Log-log time against N, one panel per dimension, one line per backend."""
    dims = sorted({r.d for r in rows})
    fig, axes = plt.subplots(1, len(dims), figsize=(5.5 * len(dims), 4.2), squeeze=False)
    for ax, d in zip(axes[0], dims):
        for backend in dict.fromkeys(r.backend for r in rows):
            pts = sorted((r.n, r.median_s) for r in rows if r.d == d and r.backend == backend)
            if pts:
                ax.loglog(*zip(*pts), marker="o", label=backend)
        ax.set(title=f"radius graph, d = {d}", xlabel="N (points)", ylabel="median time (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    big = max(rows, key=lambda r: r.n)  # the least affected by the cube's boundary
    fig.suptitle(f"~{big.edges / max(big.n, 1):.0f} neighbours per point, device: {big.device}")
    return _save(fig, path)


def plot_cases(rows: Sequence, path: Path, title: str) -> Path:
    """One panel per case: median time of every method (log scale), the engine first."""
    names = list(dict.fromkeys(r.case for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.0), squeeze=False)
    for ax, name in zip(axes[0], names):
        sel = [r for r in rows if r.case == name]
        bars = ax.bar([r.method for r in sel], [r.median_s for r in sel],
                      color=["tab:blue" if r.method.startswith(("engine", "capacity")) else "0.6" for r in sel])
        ax.bar_label(bars, labels=[f"{r.median_s:.3g} s" for r in sel], fontsize=8)
        times = [r.median_s for r in sel]
        ax.set(yscale="log", ylim=(min(times) / 10, max(times) * 3), ylabel="median time (s)",
               title=f"{name}\n{sel[0].atoms:,} atoms, {sel[0].pairs:,} pairs")
        ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle(title)
    return _save(fig, path)


def plot_training(history: Sequence[dict], untrained, trained, state, paths, out: Path) -> None:
    """``train_path_loss.png`` (loss per iteration) and ``train_path_trajectories.png``.

    The trajectory figure shows universe 0: the path, the members (token 0) and
    the other particles, before and after training (eval mode).
    """
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([h["iteration"] for h in history], [h["loss"] for h in history])
    ax.set(xlabel="iteration", ylabel="path loss (training reading)", title="training")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "train_path_loss.png", dpi=120)
    plt.close(fig)

    universe = state.batch == 0
    members = universe & (state.token == 0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharex=True, sharey=True)
    for ax, traj, title in zip(axes, (untrained, trained), ("untrained", "trained")):
        for idx, colour, width in ((universe & ~members, "0.75", 0.6), (members, "tab:blue", 1.2)):
            for i in idx.nonzero().view(-1).tolist():
                ax.plot(traj[:, i, 0], traj[:, i, 1], color=colour, lw=width)
        ax.plot(paths[0, :, 0], paths[0, :, 1], "k--", lw=2, label="target path")
        ax.scatter(traj[0, members, 0], traj[0, members, 1], s=12, color="tab:blue", label="members (start)")
        ax.set(title=title, aspect="equal")
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "train_path_trajectories.png", dpi=120)
    plt.close(fig)


def plot_methods(rows: Sequence[dict], threshold: float, path: Path, title: str) -> Path:
    """Final loss of every run, one column per method, its median (the tables' median) and the success threshold."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(methods), 4.2))
    for x, name in enumerate(methods):
        losses = [r["loss_particle"] for r in rows if r["method"] == name]
        jitter = [x + 0.08 * ((i % 5) - 2) for i in range(len(losses))]
        ax.scatter(jitter, losses, alpha=0.7)
        ax.hlines(statistics.median(losses), x - 0.25, x + 0.25, color="k", label="median" if x == 0 else None)
    ax.axhline(threshold, ls="--", color="tab:red", label="success below")
    ax.set_xticks(range(len(methods)), methods)
    ax.set(ylabel="final path loss (particle reading, eval)", title=title)
    ax.legend()
    return _save(fig, path)


def plot_double_slit(rows: Sequence[dict], wave, cfg, path: Path) -> Path:
    """Left: one wave's copies at a few times, over the wall. Right: screen histograms per method."""
    import torch

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    first = wave.waves[0]
    wall = first.copies.fixed & (first.copies.batch == 0)
    left.scatter(first.copies.pos[wall, 0], first.copies.pos[wall, 1], s=6, color="k", label="wall")
    passed = [r["particle"] for r in rows if r["method"] != "particles" and r["reached"]]
    shown = passed[0] if passed else 0  # a wave that reaches the screen, if any did
    times = torch.linspace(0, len(wave.waves) - 1, 6).long().tolist()
    for t, colour in zip(times, plt.cm.viridis(torch.linspace(0, 0.9, len(times)).tolist())):
        copies = wave.waves[t].copies
        mine = ~copies.fixed & (copies.batch == shown)
        size = 10 + 60 * torch.softmax(copies.score[mine], 0)
        left.scatter(copies.pos[mine, 0], copies.pos[mine, 1], s=size, color=colour, label=f"copies, t = {t + 1}")
    left.plot(wave.pos[:, -cfg.particles + shown, 0], wave.pos[:, -cfg.particles + shown, 1], "r-", lw=1,
              label="measured")
    left.axvline(cfg.screen, color="0.5", ls=":")
    left.set(title=f"wave {shown}: copies (size: softmax of the score)", xlabel="x", ylabel="y", aspect="equal")
    left.legend(fontsize=7, loc="lower left")
    bins = torch.linspace(-cfg.wall_half_height, cfg.wall_half_height, 51).tolist()
    for name in dict.fromkeys(r["method"] for r in rows):
        hits = [r["y_screen"] for r in rows if r["method"] == name and r["reached"]]
        share = len(hits) / sum(r["method"] == name for r in rows)
        right.hist(hits, bins=bins, histtype="step", lw=1.5, label=f"{name} ({share:.0%} reach the screen)")
    for sign in (-1, 1):
        right.axvspan(sign * cfg.slit_centre - cfg.slit_width / 2, sign * cfg.slit_centre + cfg.slit_width / 2,
                      color="0.9")
    right.set(title=f"measured hits on the screen at x = {cfg.screen} (slits shaded)", xlabel="y", ylabel="count")
    right.legend(fontsize=8)
    return _save(fig, path)


def plot_inference(history: Sequence[dict], model, truth, path: Path) -> Path:
    """Loss per window; the learned particles (size: mass, colour: charge); learned vs true covariances."""
    import torch

    panels = 3 if truth is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4.2))
    loss = torch.tensor([h["loss"] for h in history])
    width = max(1, len(loss) // 50)
    smooth = loss.unfold(0, width, width).mean(1) if len(loss) >= width else loss
    axes[0].plot(range(len(loss)), loss, color="0.8", lw=0.6, label="per window")
    axes[0].plot([width * (i + 0.5) for i in range(len(smooth))], smooth, color="tab:blue", label="mean")
    axes[0].set(xlabel="window (gradient step)", ylabel="loss per measurement", title="seed 001 loss")
    axes[0].legend()
    pos = model.pos.detach()
    charge = model.charge.detach()
    size = 40 * model.log_mass.detach().exp()
    art = axes[1].scatter(pos[:, 0], pos[:, 1 % pos.size(1)], s=size, c=charge, cmap="coolwarm",
                          vmin=-float(charge.abs().max()), vmax=float(charge.abs().max()))
    fig.colorbar(art, ax=axes[1], label="charge")
    axes[1].set(title="learned particles (size: mass)", xlabel="r0", ylabel="r1", aspect="equal")
    if truth is not None:
        learned = model.covariance().detach()
        off = ~torch.eye(truth.size(0), dtype=torch.bool)
        axes[2].scatter(truth[off], learned[off], s=6, alpha=0.6, label="covariances")
        axes[2].scatter(truth.diagonal(), learned.diagonal(), s=12, label="variances (masses)")
        lim = [float(truth.min()), float(truth.max())]
        axes[2].plot(lim, lim, "k--", lw=1)
        axes[2].set(xlabel="true K", ylabel="learned K", title="covariance recovered")
        axes[2].legend()
    return _save(fig, path)


def plot_string(results: dict, rows: Sequence[dict], path: Path) -> Path:
    """Space-time heatmaps of the displacement (uniform string, whip) and the pulse speed along the string."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for ax, name in zip(axes, ("uniform", "whip")):
        r = results[name]
        y = r["y"]
        limit = float(y.abs().max())
        ax.imshow(y.numpy(), aspect="auto", origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit,
                  extent=[float(r["x"][0]), float(r["x"][-1]), 0, float(r["all_times"][-1])])
        ax.plot(r["peak"], r["times"], "k:", lw=1, label="tracked peak")
        ax.set(title=f"{name}: displacement y(x, t)", xlabel="x", ylabel="t")
        ax.legend(loc="upper left", fontsize=8)
    for name, colour in (("uniform", "tab:blue"), ("whip", "tab:orange")):
        sel = [r for r in rows if r["case"] == name]
        axes[2].plot([r["x"] for r in sel], [r["measured"] for r in sel], "o", color=colour, label=f"{name}, measured")
        axes[2].plot([r["x"] for r in sel], [r["predicted"] for r in sel], "-", color=colour,
                     label=f"{name}, sqrt(T / mu(x))")
    axes[2].set(title="pulse speed along the string", xlabel="x", ylabel="speed")
    axes[2].legend(fontsize=8)
    return _save(fig, path)


def plot_energy(rows: Sequence[dict], path: Path) -> Path:
    """Relative energy drift against time, one line per integrator (log scale)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in dict.fromkeys(r["integrator"] for r in rows):
        sel = [r for r in rows if r["integrator"] == name and r["step"] > 0]
        ax.semilogy([r["time"] for r in sel], [max(r["drift"], 1e-16) for r in sel], label=name)
    ax.axhline(1e-3, ls="--", color="0.5", label="1e-3")
    ax.set(xlabel="time (LJ units)", ylabel="|E(t) - E(0)| / |E(0)|", title="Lennard-Jones gas: energy drift")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
