"""PyG layers of the differentiable universe (one per file)."""

from .codebook import Quantized, TokenCodebook
from .collision_conv import CollisionConv
from .inverse_distance_conv import InverseDistanceConv
from .universe_step import UniverseStep

__all__ = ["CollisionConv", "InverseDistanceConv", "Quantized", "TokenCodebook", "UniverseStep"]
