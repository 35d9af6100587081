"""Batched inner solvers (run without autograd) and their result type."""

from lightning_energy.solvers.banded_irls import BandedEnergy, BandedIRLS
from lightning_energy.solvers.base import Solver, SolverState
from lightning_energy.solvers.block_arrow_lm import (
    BlockArrowEnergy,
    BlockArrowLevenbergMarquardt,
    BlockArrowNewton,
)
from lightning_energy.solvers.gauss_newton import GaussNewton, LevenbergMarquardt
from lightning_energy.solvers.gradient_descent import GradientDescent
from lightning_energy.solvers.multistart import MultiStart
from lightning_energy.solvers.newton import Newton
from lightning_energy.solvers.newton_cg import NewtonCG
from lightning_energy.solvers.problem import Problem
from lightning_energy.solvers.solution import Solution, SolverStatus

__all__ = [
    "BandedEnergy", "BandedIRLS", "BlockArrowEnergy", "BlockArrowLevenbergMarquardt",
    "BlockArrowNewton",
    "GaussNewton", "GradientDescent", "LevenbergMarquardt",
    "MultiStart", "Newton", "NewtonCG", "Problem", "Solution", "Solver", "SolverState",
    "SolverStatus",
]
