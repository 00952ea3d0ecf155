"""Experiment scripts: each writes CSV and PNG to ``data/``."""

from __future__ import annotations

import csv
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Sequence


def write_csv(rows: Sequence[Any], path: Path) -> Path:
    """Write dicts or dataclass rows (one line each, columns from the first row)."""
    dicts = [asdict(r) if is_dataclass(r) else dict(r) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dicts[0]) if dicts else [])
        writer.writeheader()
        writer.writerows(dicts)
    return path
