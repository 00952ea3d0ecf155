"""sparse_universe: a differentiable universe of particles on PyTorch Geometric."""

from .branching import BranchManager, WaveState
from .losses import path_loss, wave_path_loss
from .neighbors import (
    NeighborList,
    NeighborOverflowError,
    PaddedGraph,
    RadiusGraph,
    RadiusInteractionGraph,
    edge_vectors,
    radius,
    radius_graph,
    radius_graph_padded,
)
from .simulate import Trajectory, rollout
from .state import ParticleState

__version__ = "0.1.0"

__all__ = [
    "BranchManager",
    "NeighborList",
    "ParticleState",
    "Trajectory",
    "WaveState",
    "NeighborOverflowError",
    "PaddedGraph",
    "RadiusGraph",
    "RadiusInteractionGraph",
    "edge_vectors",
    "path_loss",
    "radius",
    "radius_graph",
    "radius_graph_padded",
    "rollout",
    "wave_path_loss",
]
