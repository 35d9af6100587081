"""Energies: the base classes, robust kernels and built-in energies."""

from lightning_energy.energies.base import Energy, LeastSquaresEnergy
from lightning_energy.energies.toy import KernelDensityEnergy, QuadraticEnergy

__all__ = ["Energy", "KernelDensityEnergy", "LeastSquaresEnergy", "QuadraticEnergy"]
