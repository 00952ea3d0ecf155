"""Known physics: fixed pair potentials driving the universe's engine."""

from .potentials import LennardJones, PairPotential, SoftSphere
from .step import PairForceStep

__all__ = ["LennardJones", "PairForceStep", "PairPotential", "SoftSphere"]
