"""Exact epsilon-neighbour graphs: engines, a Verlet list and PyG adapters."""

from .geometry import edge_vectors
from .radius import NeighborOverflowError, radius_graph

__all__ = ["NeighborOverflowError", "edge_vectors", "radius_graph"]
