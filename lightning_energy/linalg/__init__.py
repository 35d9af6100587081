"""Batched linear algebra below the solvers and the adjoints.

Damped dense Cholesky with its fallback, conjugate gradients, banded (pentadiagonal) and
block-arrow (block-tridiagonal with a shared border, Schur complement) solves, and the
linear-solver objects an :class:`~lightning_energy.ImplicitAdjoint` is given.
"""

from lightning_energy.linalg.banded import band_matvec, banded_damped_solve, solve_bands
from lightning_energy.linalg.block_arrow import BlockArrowMatrix, block_arrow_damped_solve
from lightning_energy.linalg.cg import CGInfo, conjugate_gradient
from lightning_energy.linalg.dense import LinearSolveInfo, damped_cholesky_solve, try_cholesky_solve
from lightning_energy.linalg.solvers import (
    Banded,
    BlockArrow,
    Cholesky,
    ConjugateGradient,
    Curvature,
    LinearSolver,
)

__all__ = [
    "Banded",
    "BlockArrow",
    "BlockArrowMatrix",
    "CGInfo",
    "Cholesky",
    "ConjugateGradient",
    "Curvature",
    "LinearSolveInfo",
    "LinearSolver",
    "band_matvec",
    "banded_damped_solve",
    "block_arrow_damped_solve",
    "conjugate_gradient",
    "damped_cholesky_solve",
    "solve_bands",
    "try_cholesky_solve",
]
