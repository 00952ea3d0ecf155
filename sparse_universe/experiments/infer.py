"""Seed 001's inference model on a CSV of measurements: learn positions, masses and charges.

Run it as::

    sparse-universe infer                                   # the example in data/ (N = 20, T = 4000)
    sparse-universe infer --csv my_measurements.csv --dim 3 --epochs 20
    sparse-universe infer --make-example                    # (re)write the example and its truth

The CSV has one column per variable and one row per time step (a header
row of names). The model (:mod:`sparse_universe.inference`) learns one
particle per variable. Writes ``infer_positions.csv`` (position, mass and
charge per variable), ``infer_history.csv`` (loss per window) and
``infer.png``. With ``--truth`` (a CSV of the true positions, masses and
charges, as ``--make-example`` writes), it also prints the relative error
of the learned covariance next to that of the sample covariance.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch

from ..inference import APPROXIMATIONS, CovarianceUniverse, infer, relative_error
from . import command_main, number, write_csv

EXAMPLE = Path("data/measurements_example.csv")


def truth_model(num_variables: int = 20, dim: int = 3, seed: int = 0) -> CovarianceUniverse:
    """A known configuration: masses in [1, 2], charges of size 0.3-0.6 and random sign."""
    torch.manual_seed(seed)
    model = CovarianceUniverse(num_variables, dim).double()
    with torch.no_grad():
        model.log_mass.copy_(torch.log(1 + torch.rand(num_variables, dtype=torch.float64)))
        sign = torch.where(torch.rand(num_variables) < 0.5, -1.0, 1.0).double()
        model.charge.copy_((0.3 + 0.3 * torch.rand(num_variables, dtype=torch.float64)) * sign)
    return model


def sample(model: CovarianceUniverse, steps: int, seed: int = 0) -> torch.Tensor:
    """``(steps, N)`` draws from the model's Gaussian."""
    torch.manual_seed(seed + 1)
    k = model.covariance().detach()
    return torch.distributions.MultivariateNormal(torch.zeros(k.size(0), dtype=k.dtype), k).sample((steps,))


def save_model(model: CovarianceUniverse, path: Path) -> Path:
    rows = [dict(variable=i, **{f"r{d}": float(x) for d, x in enumerate(pos)}, mass=float(m), charge=float(q))
            for i, (pos, m, q) in enumerate(zip(model.pos.detach(), model.log_mass.detach().exp(),
                                                 model.charge.detach()))]
    return write_csv(rows, path)


def load_model(path: Path) -> CovarianceUniverse:
    table = np.genfromtxt(path, delimiter=",", names=True)
    dims = sorted(name for name in table.dtype.names if name.startswith("r"))
    model = CovarianceUniverse(len(table), len(dims)).double()
    with torch.no_grad():
        model.pos.copy_(torch.from_numpy(np.stack([table[d] for d in dims], 1)))
        model.log_mass.copy_(torch.log(torch.from_numpy(table["mass"])))
        model.charge.copy_(torch.from_numpy(table["charge"]))
    return model


def make_example(path: Path = EXAMPLE, num_variables: int = 20, steps: int = 4000) -> Path:
    model = truth_model(num_variables)
    x = sample(model, steps).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, x, delimiter=",", fmt="%.4f", header=",".join(f"v{i}" for i in range(x.shape[1])),
               comments="")
    save_model(model, path.with_name(path.stem + "_truth.csv"))
    return path


def read_measurements(path: Path) -> torch.Tensor:
    if not path.exists():
        raise FileNotFoundError(f"Expected a CSV of measurements at '{path}' (not found); "
                                f"`sparse-universe infer --make-example` writes one")
    x = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return torch.from_numpy(x)


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--csv", type=Path, default=EXAMPLE, help="measurements: a column per variable")
    parser.add_argument("--truth", type=Path, default=None, help="true positions/masses/charges (for the example)")
    parser.add_argument("--make-example", action="store_true", help="write the example CSV and its truth first")
    parser.add_argument("--dim", type=number(int, 1), default=3)
    parser.add_argument("--window", type=number(int, 1), default=250, help="measurements per gradient step")
    parser.add_argument("--epochs", type=number(int, 1), default=50, help="passes over the stream")
    parser.add_argument("--lr", type=number(float, 0, strict=True), default=0.02)
    parser.add_argument("--restarts", type=number(int, 1), default=3,
                        help="random starts; the lowest final loss is kept")
    parser.add_argument("--approximation", choices=APPROXIMATIONS, default="exact")
    parser.add_argument("--cutoff", type=number(float, 0, strict=True), default=None,
                        help="sparse: no covariance beyond this distance")
    parser.add_argument("--out", type=Path, default=Path("data"))
    return parser


def outputs(args: argparse.Namespace) -> List[Path]:
    """The results, and with ``--make-example`` the example and its truth."""
    example = [args.csv, args.csv.with_name(args.csv.stem + "_truth.csv")] if args.make_example else []
    return [*example, *(args.out / name for name in ("infer_positions.csv", "infer_history.csv", "infer.png"))]


def execute(args: argparse.Namespace) -> dict:
    from ..viz import plot_inference

    if args.make_example:
        make_example(args.csv)
        args.truth = args.truth or args.csv.with_name(args.csv.stem + "_truth.csv")
    elif args.truth is None and args.csv == EXAMPLE and EXAMPLE.with_name(EXAMPLE.stem + "_truth.csv").exists():
        args.truth = EXAMPLE.with_name(EXAMPLE.stem + "_truth.csv")
    x = read_measurements(args.csv)
    model, history = infer(x, args.dim, args.window, args.epochs, args.lr, args.restarts,
                           approximation=args.approximation, cutoff=args.cutoff)
    epoch_loss = [sum(h["loss"] for h in history if h["epoch"] == e) / (x.size(0) // args.window)
                  for e in (0, args.epochs - 1)]
    out = dict(variables=x.size(1), steps=x.size(0), first_epoch_loss=epoch_loss[0], last_epoch_loss=epoch_loss[1])
    positions_csv, history_csv, png = outputs(args)[-3:]
    save_model(model, positions_csv)
    write_csv(history, history_csv)
    truth = load_model(args.truth).covariance().detach() if args.truth else None
    if truth is not None:
        out.update(error=relative_error(model.covariance().detach(), truth),
                   sample_error=relative_error(torch.cov(x.T), truth))
    plot_inference(history, model, truth, png)
    print(", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in out.items()))
    print(f"wrote {positions_csv}, {history_csv} and {png}")
    return out


def main(argv: Optional[Sequence[str]] = None) -> dict:
    return command_main("infer", argv)


if __name__ == "__main__":
    main()
