"""Experiment scripts: each writes CSV and PNG to ``data/``."""

from __future__ import annotations

import argparse
import csv
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Type, TypeVar

C = TypeVar("C")


def write_csv(rows: Sequence[Any], path: Path) -> Path:
    """Write dicts or dataclass rows (one line each, columns from the first row)."""
    dicts = [asdict(r) if is_dataclass(r) else dict(r) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dicts[0]) if dicts else [])
        writer.writeheader()
        writer.writerows(dicts)
    return path


def add_config_arguments(parser: argparse.ArgumentParser, config: type) -> argparse.ArgumentParser:
    """One ``--option`` per field of a config dataclass, with its default and type."""
    for f in fields(config):
        kind = (lambda v: v.lower() in ("1", "true", "yes")) if isinstance(f.default, bool) else type(f.default)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default)
    return parser


def config_parser(config: type):
    """A ``build_parser`` for an experiment configured by dataclass ``config`` alone (plus ``--out``)."""
    def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        add_config_arguments(parser, config)
        parser.add_argument("--out", type=Path, default=Path("data"))
        return parser
    return build_parser


def config_from_args(config: Type[C], args: argparse.Namespace) -> C:
    return config(**{f.name: getattr(args, f.name) for f in fields(config)})


def command_main(module: str, argv: Optional[Sequence[str]]) -> Any:
    """Run experiment ``module`` (a name in this package) as ``sparse-universe <command>`` would."""
    from importlib import import_module

    from ..cli import COMMANDS

    mod = import_module(f"{__name__}.{module}")
    prog = next(name for name, m, _ in COMMANDS if m is mod)
    parser = mod.build_parser(argparse.ArgumentParser(prog=f"sparse-universe {prog}", description=mod.__doc__,
                                                      formatter_class=argparse.RawDescriptionHelpFormatter))
    return mod.execute(parser.parse_args(argv))
