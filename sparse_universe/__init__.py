"""sparse_universe: a differentiable universe of particles on PyTorch Geometric."""

from .neighbors import (
    NeighborList,
    NeighborOverflowError,
    RadiusGraph,
    RadiusInteractionGraph,
    edge_vectors,
    radius_graph,
)

__version__ = "0.1.0"

__all__ = [
    "NeighborList",
    "NeighborOverflowError",
    "RadiusGraph",
    "RadiusInteractionGraph",
    "edge_vectors",
    "radius_graph",
]
