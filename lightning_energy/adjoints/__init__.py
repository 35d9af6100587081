"""Backward rules: how dL/dx* becomes dL/dθ and dL/dinputs."""

from lightning_energy.adjoints.base import Adjoint
from lightning_energy.adjoints.implicit import ImplicitAdjoint
from lightning_energy.adjoints.unrolled import TruncatedAdjoint, UnrolledAdjoint

__all__ = ["Adjoint", "ImplicitAdjoint", "TruncatedAdjoint", "UnrolledAdjoint"]
