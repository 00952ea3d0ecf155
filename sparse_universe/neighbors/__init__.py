"""Exact epsilon-neighbour graphs: engines, a Verlet list and PyG adapters."""

from .capacity import PaddedGraph, radius_graph_padded
from .geometry import edge_vectors
from .pyg import RadiusGraph, RadiusInteractionGraph
from .radius import NeighborOverflowError, radius, radius_graph
from .verlet import NeighborList

__all__ = [
    "NeighborList",
    "NeighborOverflowError",
    "PaddedGraph",
    "RadiusGraph",
    "RadiusInteractionGraph",
    "edge_vectors",
    "radius",
    "radius_graph",
    "radius_graph_padded",
]
