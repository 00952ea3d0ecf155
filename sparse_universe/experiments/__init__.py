"""Experiment scripts: each writes CSV and PNG to ``data/``."""

from __future__ import annotations

import argparse
import csv
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Type, TypeVar

from ..neighbors.checks import check_int, check_real

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


def parse_bool(text: str) -> bool:
    """``true`` or ``false`` (any case); anything else is an error, never read as false."""
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false (got {text!r})")
    return text.lower() == "true"


def number(kind: type, minimum: Optional[float] = None, strict: bool = False) -> Callable[[str], Any]:
    """An argparse ``type``: an ``int`` or finite ``float`` at least (``strict``: above) ``minimum``."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
            return check_int(value, "value", minimum) if kind is int else check_real(value, "value", minimum, strict)
        except ValueError as e:
            message = str(e) if "Expected" in str(e) else f"Expected 'value' to be {kind.__name__} (got {text!r})"
            raise argparse.ArgumentTypeError(message.replace("Expected 'value' to be", "must be")) from None
    return parse


def check_fields(cfg: Any, positive: Sequence[str] = (), nonnegative: Sequence[str] = ()) -> None:
    """Range-check a config dataclass: every number finite, the named ones ``> 0`` or ``>= 0``.

    Integer fields must be ints (``>= 1`` when positive). Called from the configs'
    ``__post_init__``, so a bad value is refused whether it comes from the CLI or from code.
    """
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(f.default, bool):
            if not isinstance(value, bool):
                raise TypeError(f"Expected '{f.name}' to be True or False (got {value!r})")
        elif isinstance(f.default, int):
            check_int(value, f.name, 1 if f.name in positive else 0 if f.name in nonnegative else None)
        elif isinstance(f.default, float):
            minimum = 0.0 if f.name in positive or f.name in nonnegative else None
            check_real(value, f.name, minimum, strict=f.name in positive)


def add_config_arguments(parser: argparse.ArgumentParser, config: type) -> argparse.ArgumentParser:
    """One ``--option`` per field of a config dataclass, with its default and type.

    Ranges are checked by the config itself (see :func:`check_fields`).
    """
    for f in fields(config):
        kind = parse_bool if isinstance(f.default, bool) else number(type(f.default)) if isinstance(
            f.default, (int, float)) else type(f.default)
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


class OutputsExist(RuntimeError):
    """A run would replace results already on disk."""


def add_overwrite(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    return parser


def check_outputs(paths: Sequence[Path], args: argparse.Namespace) -> None:
    """Refuse to replace earlier results unless ``--overwrite`` (or ``--resume``) says so."""
    if args.overwrite or getattr(args, "resume", False):
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        resume = " --resume to continue that run, or" if hasattr(args, "resume") else ""
        raise OutputsExist(f"{existing[0]} already exists{more}: pass{resume} --overwrite to replace it, or "
                           f"--out to write elsewhere")


def command_main(module: str, argv: Optional[Sequence[str]]) -> Any:
    """Run experiment ``module`` (a name in this package) as ``sparse-universe <command>`` would."""
    from importlib import import_module

    from ..cli import COMMANDS

    mod = import_module(f"{__name__}.{module}")
    prog = next(name for name, m, _ in COMMANDS if m is mod)
    parser = mod.build_parser(argparse.ArgumentParser(prog=f"sparse-universe {prog}", description=mod.__doc__,
                                                      formatter_class=argparse.RawDescriptionHelpFormatter))
    args = add_overwrite(parser).parse_args(argv)
    check_outputs(mod.outputs(args), args)
    return mod.execute(args)
