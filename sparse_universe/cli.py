"""The ``sparse-universe`` command."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from .experiments import (
    bench_step,
    double_slit,
    infer,
    lj_gas,
    scaling,
    string_wave,
    train_path,
    waves_vs_particles,
)

#: (command, module, one-line help); each module has build_parser(parser) and execute(args).
COMMANDS = (
    ("scale", scaling, "radius-graph scaling benchmark of every backend"),
    ("train", train_path, "train a universe to move a token group along a path"),
    ("bench-step", bench_step, "forward + backward time of one universe step"),
    ("waves-vs-particles", waves_vs_particles, "does wave-particle duality help optimisation?"),
    ("double-slit", double_slit, "a wave of copies through two slits onto a screen"),
    ("lj", lj_gas, "Lennard-Jones gas: energy drift by integrator; --bench: step cost"),
    ("string", string_wave, "seed 002's string and whip: wave speed against sqrt(T / mu)"),
    ("infer", infer, "seed 001: learn particles from a CSV of measurements"),
)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="sparse-universe", description="A differentiable universe of particles.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module, summary in COMMANDS:
        sub = commands.add_parser(name, help=summary, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.build_parser(sub)
        sub.set_defaults(run=module.execute)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
