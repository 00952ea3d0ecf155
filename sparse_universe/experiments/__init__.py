"""Experiment scripts: each writes CSV and PNG to ``data/``."""

from __future__ import annotations

import argparse
import csv
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, Sequence, Type, TypeVar

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


def config_from_args(config: Type[C], args: argparse.Namespace) -> C:
    return config(**{f.name: getattr(args, f.name) for f in fields(config)})
