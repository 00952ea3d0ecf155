"""Known physics: pair potentials driving the universe's engine, integrators and observables."""

from . import observables
from .integrators import INTEGRATORS
from .potentials import Coulomb, Harmonic, LennardJones, PairPotential, SoftSphere, chain
from .step import PairForceStep

__all__ = ["INTEGRATORS", "Coulomb", "Harmonic", "LennardJones", "PairForceStep", "PairPotential", "SoftSphere",
           "chain", "observables"]
