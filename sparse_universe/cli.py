"""The ``sparse-universe`` command.

Errors print one line, ``sparse-universe <command>: error: ...``, and exit
with status 2 (``sparse-universe --debug <command>`` shows the traceback).
A command refuses to replace results already in its ``--out`` folder unless
given ``--overwrite`` (``train`` also continues with ``--resume``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .experiments import (
    add_overwrite,
    bench_step,
    check_outputs,
    double_slit,
    infer,
    lj_gas,
    scale_out,
    scaling,
    string_wave,
    train_path,
    waves_vs_particles,
)

#: (command, module, one-line help); each module has build_parser(parser), outputs(args) and execute(args).
COMMANDS = (
    ("scale", scaling, "radius-graph scaling benchmark of every backend"),
    ("scale-out", scale_out, "weak and strong scaling of a universe over torch.distributed processes"),
    ("train", train_path, "train a universe to move a token group along a path"),
    ("bench-step", bench_step, "forward + backward time of one universe step"),
    ("waves-vs-particles", waves_vs_particles, "does wave-particle duality help optimisation?"),
    ("double-slit", double_slit, "a wave of copies through two slits onto a screen"),
    ("lj", lj_gas, "Lennard-Jones gas: energy drift by integrator; --bench: step cost"),
    ("string", string_wave, "seed 002's string and whip: wave speed against sqrt(T / mu)"),
    ("infer", infer, "seed 001: learn particles from a CSV of measurements"),
)


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (argparse prints the whole usage block first)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="sparse-universe", description="A differentiable universe of particles.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module, summary in COMMANDS:
        sub = commands.add_parser(name, help=summary, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        add_overwrite(module.build_parser(sub))
        sub.set_defaults(module=module)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        check_outputs(args.module.outputs(args), args)
        args.module.execute(args)
    except KeyboardInterrupt:
        print(f"sparse-universe {args.command}: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        if args.debug:
            raise
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"sparse-universe {args.command}: error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
