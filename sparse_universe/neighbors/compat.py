"""Drop-ins with torch-cluster's signatures, and a patch for models that call it internally.

Existing call sites keep their code::

    from sparse_universe.neighbors.compat import radius_graph   # instead of torch_cluster's
    edge_index = radius_graph(pos, r=5.0, batch=batch, max_num_neighbors=32)

and models that call ``torch_cluster.radius_graph`` or
``torch_geometric.nn.radius_graph`` inside ``forward`` (PyG's ``SchNet``,
``DimeNet``, ``GNNFF``, ...) run on the exact engine, unedited, inside
:func:`patch`::

    with patch():
        energy = SchNet(cutoff=5.0)(z, pos, batch)

The results are exact and sorted. The default ``max_num_neighbors`` is
``None`` (no limit): where torch-cluster's default of 32 drops neighbours
silently, here a cap that is exceeded raises
:class:`~sparse_universe.NeighborOverflowError` naming the largest degree,
or, with ``on_overflow="nearest"``, keeps the nearest. ``num_workers`` and
``batch_size`` are accepted for compatibility and not needed.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator, Optional

from torch import Tensor

from ..typing import OnOverflow
from .radius import radius as exact_radius
from .radius import radius_graph as exact_radius_graph


def radius_graph(x: Tensor, r: float, batch: Optional[Tensor] = None, loop: bool = False,
                 max_num_neighbors: Optional[int] = None, flow: str = "source_to_target", num_workers: int = 1,
                 batch_size: Optional[int] = None, *, on_overflow: OnOverflow = "raise") -> Tensor:
    """``torch_cluster.radius_graph``'s signature on :func:`sparse_universe.radius_graph`."""
    return exact_radius_graph(x, r, batch, loop=loop, max_num_neighbors=max_num_neighbors, flow=flow,
                              on_overflow=on_overflow)


def radius(x: Tensor, y: Tensor, r: float, batch_x: Optional[Tensor] = None, batch_y: Optional[Tensor] = None,
           max_num_neighbors: Optional[int] = None, num_workers: int = 1, batch_size: Optional[int] = None, *,
           on_overflow: OnOverflow = "raise") -> Tensor:
    """``torch_cluster.radius``'s signature on :func:`sparse_universe.radius` (``[y index, x index]`` rows)."""
    return exact_radius(x, y, r, batch_x, batch_y, max_num_neighbors=max_num_neighbors, on_overflow=on_overflow)


@contextlib.contextmanager
def patch(on_overflow: OnOverflow = "raise") -> Iterator[None]:
    """Route ``radius_graph`` and ``radius`` of torch-cluster and PyG to the exact engine inside the block.

    Every loaded module that holds one of those functions by name (``from
    torch_geometric.nn import radius_graph`` at the top of a model file, as
    PyG's models do) is pointed at the drop-ins, and restored on exit.
    ``on_overflow`` applies where a model passes a ``max_num_neighbors``.
    """
    originals = {}
    for module_name in ("torch_cluster", "torch_geometric.nn.pool", "torch_geometric.nn"):
        module = _load(module_name)
        for name in ("radius_graph", "radius"):
            if module is not None and callable(getattr(module, name, None)):
                originals[id(getattr(module, name))] = name

    def patched_radius_graph(*args, **kwargs):
        kwargs.setdefault("on_overflow", on_overflow)
        return radius_graph(*args, **kwargs)

    def patched_radius(*args, **kwargs):
        kwargs.setdefault("on_overflow", on_overflow)
        return radius(*args, **kwargs)

    replacement = {"radius_graph": patched_radius_graph, "radius": patched_radius}
    swapped = []
    for module in list(sys.modules.values()):
        for name in ("radius_graph", "radius"):
            try:
                current = getattr(module, name, None)
            except Exception:  # lazy or broken modules: not ours to patch
                continue
            if current is not None and originals.get(id(current)) == name:
                swapped.append((module, name, current))
                setattr(module, name, replacement[name])
    try:
        yield
    finally:
        for module, name, current in swapped:
            setattr(module, name, current)


def _load(name: str):
    try:
        __import__(name)
    except ImportError:
        return None
    return sys.modules[name]
