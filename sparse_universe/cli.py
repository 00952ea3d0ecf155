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


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="sparse-universe", description="A differentiable universe of particles.")
    commands = parser.add_subparsers(dest="command", required=True)
    scale = commands.add_parser("scale", help="radius-graph scaling benchmark of every backend",
                                description=scaling.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scaling.build_parser(scale)
    scale.set_defaults(run=scaling.execute)
    train = commands.add_parser("train", help="train a universe to move a token group along a path",
                                description=train_path.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    train_path.build_parser(train)
    train.set_defaults(run=train_path.execute)
    bench = commands.add_parser("bench-step", help="forward + backward time of one universe step",
                                description=bench_step.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench_step.build_parser(bench)
    bench.set_defaults(run=bench_step.execute)
    waves = commands.add_parser("waves-vs-particles", help="does wave-particle duality help optimisation?",
                                description=waves_vs_particles.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    waves_vs_particles.build_parser(waves)
    waves.set_defaults(run=waves_vs_particles.execute)
    slit = commands.add_parser("double-slit", help="a wave of copies through two slits onto a screen",
                               description=double_slit.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    double_slit.build_parser(slit)
    slit.set_defaults(run=double_slit.execute)
    inference = commands.add_parser("infer", help="seed 001: learn particles from a CSV of measurements",
                                    description=infer.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    infer.build_parser(inference)
    inference.set_defaults(run=infer.execute)
    string = commands.add_parser("string", help="seed 002's string and whip: wave speed against sqrt(T / mu)",
                                 description=string_wave.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    string_wave.build_parser(string)
    string.set_defaults(run=string_wave.execute)
    lj = commands.add_parser("lj", help="Lennard-Jones gas: energy drift by integrator; --bench: step cost",
                             description=lj_gas.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    lj_gas.build_parser(lj)
    lj.set_defaults(run=lj_gas.execute)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
