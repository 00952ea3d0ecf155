"""Figures (matplotlib, saved as PNG)."""

from __future__ import annotations

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
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
