"""Known physics: pair potentials driving the universe's engine, integrators and observables."""

from . import observables
from .integrators import INTEGRATORS
from .potentials import Coulomb, LennardJones, PairPotential, SoftSphere
from .step import PairForceStep

__all__ = ["INTEGRATORS", "Coulomb", "LennardJones", "PairForceStep", "PairPotential", "SoftSphere", "observables"]
