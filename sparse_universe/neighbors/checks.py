"""Input checks at the public boundary of the neighbour engine.

Each check names the argument, what was expected and what was given, so a bad
call fails here with a readable message instead of deep inside a kernel.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Optional

import torch
from torch import Tensor

from .geometry import periodic_box

BACKENDS = ("auto", "hash", "examples", "cluster", "dense")
FLOWS = ("source_to_target", "target_to_source")
ON_OVERFLOW = ("raise", "nearest")


FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_pos(pos: object, name: str = "pos", finite: bool = True) -> Tensor:
    """A floating ``(N, d)`` tensor, ``d >= 1``; with ``finite``, no NaN or inf (one host sync)."""
    if not isinstance(pos, Tensor):
        raise TypeError(f"Expected '{name}' to be a torch.Tensor (got {type(pos).__name__})")
    if pos.dim() != 2:
        raise ValueError(
            f"Expected '{name}' to be two-dimensional (N, d) (got {pos.dim()} dimensions, "
            f"shape {tuple(pos.shape)})"
        )
    if pos.dtype not in FLOATS:
        raise TypeError(f"Expected '{name}' to have a floating dtype (got {pos.dtype})")
    if pos.size(1) < 1:
        raise ValueError(f"Expected '{name}' to have at least one coordinate (got shape {tuple(pos.shape)})")
    bad = int((~torch.isfinite(pos)).any(dim=1).sum()) if finite and pos.numel() else 0
    if bad:
        raise ValueError(
            f"Expected '{name}' to be finite (got NaN or inf in {bad} of {pos.size(0)} rows)"
        )
    return pos


def check_int(value: object, name: str, minimum: Optional[int] = None) -> int:
    """A Python or numpy integer (not a bool), at least ``minimum``; returned as ``int``."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.dtype.is_floating_point:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"Expected '{name}' to be an int (got {type(value).__name__} {value!r})")
    if minimum is not None and value < minimum:
        raise ValueError(f"Expected '{name}' to be an int >= {minimum} (got {value})")
    return int(value)


def check_real(value: object, name: str, minimum: Optional[float] = None, strict: bool = False) -> float:
    """A finite real number (Python, numpy or a one-element tensor), ``>= minimum`` (``>`` with ``strict``)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"Expected '{name}' to be a scalar (got a tensor of shape {tuple(value.shape)})")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"Expected '{name}' to be a real number (got {type(value).__name__} {value!r})")
    value = float(value)
    low_ok = minimum is None or (value > minimum if strict else value >= minimum)
    if not math.isfinite(value) or not low_ok:
        bound = "" if minimum is None else f" and {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"Expected '{name}' to be finite{bound} (got {value})")
    return value


def check_radius(r: object, name: str = "r") -> float:
    return check_real(r, name, 0.0, strict=True)


def check_batch(batch: Optional[Tensor], pos: Tensor, name: str = "batch", values: bool = True) -> Optional[Tensor]:
    """Any order of batch ids is accepted; only the values matter (no sorting needed).

    ``values=False`` checks type, shape and device only (no host sync, traceable).
    """
    if batch is None:
        return None
    if not isinstance(batch, Tensor):
        raise TypeError(f"Expected '{name}' to be a torch.Tensor or None (got {type(batch).__name__})")
    if batch.dtype.is_floating_point or batch.dtype.is_complex or batch.dtype == torch.bool:
        raise TypeError(f"Expected '{name}' to have an integer dtype (got {batch.dtype})")
    if batch.dim() != 1 or batch.numel() != pos.size(0):
        raise ValueError(
            f"Expected '{name}' to have shape ({pos.size(0)},), one id per row of the positions "
            f"(got shape {tuple(batch.shape)})"
        )
    if batch.device != pos.device:
        raise ValueError(f"Expected '{name}' on {pos.device} like the positions (got {batch.device})")
    if values and batch.numel() and int(batch.min()) < 0:
        raise ValueError(f"Expected '{name}' ids >= 0 (got minimum {int(batch.min())})")
    return batch.long()


def check_box(box: object, periodic: object, pos: Tensor) -> Optional[Tensor]:
    """Validate ``box``/``periodic``; return float64 ``(d,)`` periods, ``inf`` on open axes.

    An infinite side is an open axis, so the merged periods this returns are a valid ``box`` again.
    """
    d = pos.size(1)
    if box is None:
        if periodic is not None:
            raise ValueError("Got 'periodic' without 'box': give the box side lengths as 'box' (d,)")
        return None
    box_t = to_tensor(box, "box", torch.float64, pos.device)
    if box_t.shape != (d,):
        raise ValueError(f"Expected 'box' to have shape ({d},), one side per axis (got {tuple(box_t.shape)})")
    if bool(torch.isnan(box_t).any()) or bool((box_t <= 0).any()):
        raise ValueError(f"Expected 'box' sides > 0, inf for an open axis (got {box_t.tolist()})")
    per_t = None
    if periodic is not None:
        per_t = to_tensor(periodic, "periodic", None, pos.device)
        if per_t.dtype != torch.bool:
            raise TypeError(f"Expected 'periodic' to be a bool mask (got dtype {per_t.dtype})")
        if per_t.shape != (d,):
            raise ValueError(f"Expected 'periodic' to have shape ({d},) (got {tuple(per_t.shape)})")
    return periodic_box(box_t, per_t)


def to_tensor(value: object, name: str, dtype: Optional[torch.dtype], device: torch.device) -> Tensor:
    """``torch.as_tensor`` with the argument named when the value cannot become a tensor."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"Expected '{name}' to be a tensor or a sequence of numbers (got {type(value).__name__} "
                        f"{value!r})")
    try:
        return torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"Expected '{name}' to be a tensor or a sequence of numbers (got {value!r})") from e


def check_edge_index(edge_index: object, num_nodes: Optional[int], name: str = "edge_index",
                     values: bool = True) -> Tensor:
    """An integer ``(2, E)`` tensor of node ids in ``[0, num_nodes)`` (``>= 0`` if ``None``), as int64.

    The range check costs one host sync; ``values=False`` skips it (shape and dtype only).
    """
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"Expected '{name}' to be a torch.Tensor (got {type(edge_index).__name__})")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"Expected '{name}' of shape (2, E) (got {tuple(edge_index.shape)})")
    if edge_index.dtype.is_floating_point or edge_index.dtype.is_complex or edge_index.dtype == torch.bool:
        raise TypeError(f"Expected '{name}' to be an integer tensor (got {edge_index.dtype})")
    if values and edge_index.numel():
        low, high = (int(v) for v in torch.aminmax(edge_index))
        if low < 0 or (num_nodes is not None and high >= num_nodes):
            want = "ids >= 0" if num_nodes is None else f"ids in [0, {num_nodes}), one per node"
            raise ValueError(f"Expected '{name}' {want} (got range [{low}, {high}])")
    return edge_index.as_subclass(Tensor).long()


def check_choice(value: object, name: str, choices: tuple) -> str:
    if value not in choices:
        raise ValueError(f"Expected '{name}' to be one of {', '.join(map(repr, choices))} (got {value!r})")
    return value  # type: ignore[return-value]


def check_max_num_neighbors(value: object) -> Optional[int]:
    return None if value is None else check_int(value, "max_num_neighbors", 0)


def check_options(backend: object, flow: object, on_overflow: object, max_num_neighbors: object):
    """The engine's option quartet, checked: ``(backend, flow, on_overflow, cap)``."""
    return (check_choice(backend, "backend", BACKENDS), check_choice(flow, "flow", FLOWS),
            check_choice(on_overflow, "on_overflow", ON_OVERFLOW), check_max_num_neighbors(max_num_neighbors))
