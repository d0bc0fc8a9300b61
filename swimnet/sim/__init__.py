"""Deterministic discrete-event simulator running many real engines (see simulation.py)."""

from swimnet.sim.links import Constant, Matrix, Uniform, Zones
from swimnet.sim.simulation import Simulation

__all__ = ["Constant", "Matrix", "Simulation", "Uniform", "Zones"]
