"""Input checks at the public boundary of the neighbour engine.

Each check names the argument, what was expected and what was given, so a bad
call fails here with a readable message instead of deep inside a kernel.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Optional

import torch
from torch import Tensor

from .geometry import periodic_box

BACKENDS = ("auto", "hash", "cluster", "dense")
FLOWS = ("source_to_target", "target_to_source")
ON_OVERFLOW = ("raise", "nearest")


def check_pos(pos: object, name: str = "pos") -> Tensor:
    if not isinstance(pos, Tensor):
        raise TypeError(f"Expected '{name}' to be a torch.Tensor (got {type(pos).__name__})")
    if pos.dim() != 2:
        raise ValueError(
            f"Expected '{name}' to be two-dimensional (N, d) (got {pos.dim()} dimensions, "
            f"shape {tuple(pos.shape)})"
        )
    if pos.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"Expected '{name}' to have a floating dtype (got {pos.dtype})")
    if pos.size(1) < 1:
        raise ValueError(f"Expected '{name}' to have at least one coordinate (got shape {tuple(pos.shape)})")
    bad = int((~torch.isfinite(pos)).any(dim=1).sum()) if pos.numel() else 0
    if bad:
        raise ValueError(
            f"Expected '{name}' to be finite (got NaN or inf in {bad} of {pos.size(0)} rows)"
        )
    return pos


def check_radius(r: object, name: str = "r") -> float:
    if isinstance(r, Tensor):
        if r.numel() != 1:
            raise ValueError(f"Expected '{name}' to be a scalar (got a tensor of shape {tuple(r.shape)})")
        r = r.item()
    if isinstance(r, bool) or not isinstance(r, Real):
        raise TypeError(f"Expected '{name}' to be a real number (got {type(r).__name__})")
    r = float(r)
    if not math.isfinite(r) or r <= 0:
        raise ValueError(f"Expected '{name}' to be finite and > 0 (got {r})")
    return r


def check_batch(batch: Optional[Tensor], pos: Tensor) -> Optional[Tensor]:
    """Any order of batch ids is accepted; only the values matter (no sorting needed)."""
    if batch is None:
        return None
    if not isinstance(batch, Tensor):
        raise TypeError(f"Expected 'batch' to be a torch.Tensor or None (got {type(batch).__name__})")
    if batch.dtype.is_floating_point or batch.dtype.is_complex or batch.dtype == torch.bool:
        raise TypeError(f"Expected 'batch' to have an integer dtype (got {batch.dtype})")
    if batch.dim() != 1 or batch.numel() != pos.size(0):
        raise ValueError(
            f"Expected 'batch' to have shape ({pos.size(0)},), one id per row of 'pos' "
            f"(got shape {tuple(batch.shape)})"
        )
    if batch.device != pos.device:
        raise ValueError(f"Expected 'batch' on {pos.device} like 'pos' (got {batch.device})")
    if batch.numel() and int(batch.min()) < 0:
        raise ValueError(f"Expected 'batch' ids >= 0 (got minimum {int(batch.min())})")
    return batch.long()


def check_box(box: object, periodic: object, pos: Tensor) -> Optional[Tensor]:
    """Validate ``box``/``periodic``; return float64 ``(d,)`` periods, ``inf`` on open axes."""
    d = pos.size(1)
    if box is None:
        if periodic is not None:
            raise ValueError("Got 'periodic' without 'box': give the box side lengths as 'box' (d,)")
        return None
    box_t = torch.as_tensor(box, dtype=torch.float64, device=pos.device)
    if box_t.shape != (d,):
        raise ValueError(f"Expected 'box' to have shape ({d},), one side per axis (got {tuple(box_t.shape)})")
    if not bool(torch.isfinite(box_t).all()) or bool((box_t <= 0).any()):
        raise ValueError(f"Expected 'box' sides finite and > 0 (got {box_t.tolist()})")
    per_t = None
    if periodic is not None:
        per_t = torch.as_tensor(periodic, device=pos.device)
        if per_t.dtype != torch.bool:
            raise TypeError(f"Expected 'periodic' to be a bool mask (got dtype {per_t.dtype})")
        if per_t.shape != (d,):
            raise ValueError(f"Expected 'periodic' to have shape ({d},) (got {tuple(per_t.shape)})")
    return periodic_box(box_t, per_t)


def check_choice(value: object, name: str, choices: tuple) -> str:
    if value not in choices:
        raise ValueError(f"Expected '{name}' to be one of {', '.join(map(repr, choices))} (got {value!r})")
    return value  # type: ignore[return-value]


def check_max_num_neighbors(value: object) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Expected 'max_num_neighbors' to be None or an int >= 0 (got {value!r})")
    return value


def check_options(backend: object, flow: object, on_overflow: object, max_num_neighbors: object):
    """The engine's option quartet, checked: ``(backend, flow, on_overflow, cap)``."""
    return (check_choice(backend, "backend", BACKENDS), check_choice(flow, "flow", FLOWS),
            check_choice(on_overflow, "on_overflow", ON_OVERFLOW), check_max_num_neighbors(max_num_neighbors))
