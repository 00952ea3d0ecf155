r"""Differentiable collectives over ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Two kinds of adjoint:

* :func:`exchange` moves rows between ranks (ghosts, migration). Its adjoint
  moves the gradients back along the same routes and the receiving side sums
  them, LAMMPS's reverse communication. The backward is itself an
  :func:`exchange`, so double backward (forces inside a loss) works.
* :func:`all_sum` and :func:`all_gather_rows` give every rank the same
  *replicated* value, which each rank then uses in the same way (a loss every
  rank computes). Each rank back-propagates that replicated loss, so the
  gradient reaching a rank's own contribution is already complete there: the
  backward is the identity on it (no communication), as in Megatron-LM's
  "reduce from the model-parallel region".
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd import Function

Group = Optional[dist.ProcessGroup]

_clock: Dict[str, float] = {}  # seconds per kind while clocked() runs
_charging: List[str] = []  # the charged() blocks we are in


@contextmanager
def clocked() -> Iterator[Dict[str, float]]:
    """Seconds in halo exchanges and reductions (``"exchange"``) and in migrations with their send-list
    rebuilds (``"migration"``) of the code inside, for benchmarks (host time, so for CPU runs)."""
    seconds = {"exchange": 0.0, "migration": 0.0}
    _clock.update(seconds)
    try:
        yield seconds
    finally:
        seconds.update(_clock)
        _clock.clear()


@contextmanager
def charged(kind: str) -> Iterator[None]:
    """Count all the time inside as ``kind``, its communication included."""
    start = time.perf_counter()
    _charging.append(kind)
    try:
        yield
    finally:
        _charging.pop()
        _tick(kind, start)


def _tick(kind: str, start: float) -> None:
    if _clock and not _charging:
        _clock[kind] += time.perf_counter() - start


class _Exchange(Function):
    @staticmethod
    def forward(ctx, x: Tensor, send: List[int], recv: List[int], group: Group) -> Tensor:  # type: ignore[override]
        ctx.routes = (send, recv, group)
        return _all_to_all(x, send, recv, group)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        send, recv, group = ctx.routes
        return _Exchange.apply(grad, recv, send, group), None, None, None


def exchange(x: Tensor, send: Sequence[int], recv: Sequence[int], group: Group = None) -> Tensor:
    """Send ``send[r]`` consecutive rows of ``x`` to rank ``r``; receive ``recv[r]`` rows from each, in rank order.

    Differentiable: the gradient of a received row goes back to the row it
    was sent from, summed over every rank it was sent to.
    """
    return _Exchange.apply(x, list(send), list(recv), group)


def _all_to_all(x: Tensor, send: List[int], recv: List[int], group: Group) -> Tensor:
    start = time.perf_counter()
    out = x.new_empty((sum(recv),) + tuple(x.shape[1:]))
    dist.all_to_all_single(out, x.contiguous(), recv, send, group=group)
    _tick("exchange", start)
    return out


def counts(send: Tensor, group: Group = None) -> List[int]:
    """How many rows each rank will receive from each, given how many it sends to each (``(P,)`` int64)."""
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send.contiguous(), group=group)
    return recv.tolist()


class _Sum(Function):
    @staticmethod
    def forward(ctx, x: Tensor, group: Group) -> Tensor:  # type: ignore[override]
        out = x.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None


def all_sum(x: Tensor, group: Group = None) -> Tensor:
    """The sum of ``x`` over ranks, replicated on every rank (backward: identity, see the module)."""
    return _Sum.apply(x, group)


class _GatherRows(Function):
    @staticmethod
    def forward(ctx, x: Tensor, group: Group) -> Tensor:  # type: ignore[override]
        sizes = torch.zeros(dist.get_world_size(group), dtype=torch.long, device=x.device)
        sizes[dist.get_rank(group)] = x.size(0)
        dist.all_reduce(sizes, group=group)
        sizes_list = sizes.tolist()
        padded = x.new_zeros((max(sizes_list),) + tuple(x.shape[1:]))
        padded[: x.size(0)] = x
        parts = [torch.empty_like(padded) for _ in sizes_list]
        dist.all_gather(parts, padded.contiguous(), group=group)
        start = sum(sizes_list[: dist.get_rank(group)])
        ctx.rows = (start, x.size(0))
        return torch.cat([part[:size] for part, size in zip(parts, sizes_list)])

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        start, size = ctx.rows
        return grad[start:start + size], None


def all_gather_rows(x: Tensor, group: Group = None) -> Tensor:
    """Every rank's rows of ``x`` (any number each), in rank order, replicated (backward: own rows)."""
    return _GatherRows.apply(x, group)


def all_max(values: Sequence[float], device: torch.device, group: Group = None) -> List[float]:
    """Element-wise maximum over ranks of a few numbers (one collective, on ``device``; not differentiable)."""
    start = time.perf_counter()
    out = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(out, op=dist.ReduceOp.MAX, group=group)
    _tick("exchange", start)
    return out.tolist()
