"""Type aliases shared across the package."""

from __future__ import annotations

from typing import Literal, Sequence, Union

from torch import Tensor

#: Something that becomes a ``(d,)`` tensor: box side lengths or a periodic mask.
PerAxis = Union[Tensor, Sequence[float], Sequence[bool]]
#: Names of the neighbour-search engines.
Backend = Literal["auto", "hash", "examples", "cluster", "dense"]
#: PyG message-passing direction.
Flow = Literal["source_to_target", "target_to_source"]
#: What to do when a node has more neighbours than ``max_num_neighbors``.
OnOverflow = Literal["raise", "nearest"]

__all__ = ["Backend", "Flow", "OnOverflow", "PerAxis"]
