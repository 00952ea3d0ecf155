"""The ``sparse-universe`` command."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from .experiments import scaling


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="sparse-universe", description="A differentiable universe of particles.")
    commands = parser.add_subparsers(dest="command", required=True)
    scale = commands.add_parser("scale", help="radius-graph scaling benchmark of every backend",
                                description=scaling.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scaling.build_parser(scale)
    scale.set_defaults(run=scaling.execute)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
