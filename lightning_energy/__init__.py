"""lightning_energy: learn continuous energy functions end to end.

The public surface is re-exported here; everything else is private.
"""

from lightning_energy.adjoints import Adjoint, ImplicitAdjoint, TruncatedAdjoint, UnrolledAdjoint
from lightning_energy.energies import robust
from lightning_energy.energies.base import Energy, LeastSquaresEnergy
from lightning_energy.energies.toy import KernelDensityEnergy, QuadraticEnergy
from lightning_energy.errors import (
    DatasetNotFoundError,
    IncompatibleSolverError,
    ShapeError,
    SolverError,
)
from lightning_energy.layer import EnergyLayer, argmin
from lightning_energy.solvers import (
    GaussNewton,
    GradientDescent,
    LevenbergMarquardt,
    MultiStart,
    Newton,
    NewtonCG,
    Solution,
    Solver,
    SolverStatus,
)

__version__ = "0.1.0"

__all__ = [
    "Adjoint",
    "DatasetNotFoundError",
    "Energy",
    "EnergyLayer",
    "GaussNewton",
    "GradientDescent",
    "ImplicitAdjoint",
    "IncompatibleSolverError",
    "KernelDensityEnergy",
    "LeastSquaresEnergy",
    "LevenbergMarquardt",
    "MultiStart",
    "Newton",
    "NewtonCG",
    "QuadraticEnergy",
    "ShapeError",
    "Solution",
    "Solver",
    "SolverError",
    "SolverStatus",
    "TruncatedAdjoint",
    "UnrolledAdjoint",
    "__version__",
    "argmin",
    "robust",
]
