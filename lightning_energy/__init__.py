"""lightning_energy: learn continuous energy functions end to end.

The public surface is re-exported here; everything else is private.
"""

from lightning_energy.adjoints import Adjoint, ImplicitAdjoint, TruncatedAdjoint, UnrolledAdjoint
from lightning_energy.energies import robust
from lightning_energy.energies.base import Energy, LeastSquaresEnergy
from lightning_energy.energies.sequence import SequenceLeastSquaresEnergy
from lightning_energy.energies.toy import KernelDensityEnergy, QuadraticEnergy
from lightning_energy.errors import (
    DatasetNotFoundError,
    IncompatibleSolverError,
    ShapeError,
    SolverError,
)
from lightning_energy.layer import EnergyLayer, argmin
from lightning_energy.solvers import (
    BlockArrowLevenbergMarquardt,
    BlockArrowNewton,
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

__version__ = "0.2.0"

# Lightning-dependent parts load on first use, so `EnergyLayer` alone never imports Lightning.
_LAZY = {
    "EnergyTask": ("lightning_energy.tasks.base", "EnergyTask"),
    "callbacks": ("lightning_energy.callbacks", None),
    "metrics": ("lightning_energy.metrics", None),
    "testing": ("lightning_energy.testing", None),
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'lightning_energy' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)

__all__ = [
    "Adjoint",
    "BlockArrowLevenbergMarquardt",
    "BlockArrowNewton",
    "DatasetNotFoundError",
    "Energy",
    "EnergyLayer",
    "EnergyTask",
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
    "SequenceLeastSquaresEnergy",
    "ShapeError",
    "Solution",
    "Solver",
    "SolverError",
    "SolverStatus",
    "TruncatedAdjoint",
    "UnrolledAdjoint",
    "__version__",
    "argmin",
    "callbacks",
    "metrics",
    "robust",
    "testing",
]
