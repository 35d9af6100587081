"""Levenberg–Marquardt and Gauss–Newton for :class:`~lightning_energy.LeastSquaresEnergy`."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_energy.solvers.problem import Problem
from lightning_energy.solvers.trust_region import DenseTrustRegion


class LevenbergMarquardt(DenseTrustRegion):
    """Levenberg–Marquardt on the Gauss–Newton matrix JᵀWJ of a least-squares energy.

    Robust kernels enter by iterative reweighting: W = ρ'(r²) at the current iterate, so the
    gradient Jᵀ(W r) is exact and the curvature is positive semi-definite. The damping μ is
    adapted per sample from the gain ratio.

    Example:
        A robust mean: with a Huber kernel the outlier 100 barely moves the estimate.

        >>> import torch, lightning_energy as le
        >>> class Mean(le.LeastSquaresEnergy):
        ...     def residuals(self, x, inputs):  # x: (B, 1), inputs: (B, P)
        ...         return x - inputs
        >>> points = torch.tensor([[1.0, 2.0, 3.0, 100.0]], dtype=torch.float64)
        >>> solver = le.LevenbergMarquardt(tol=1e-10)
        >>> le.argmin(Mean(le.robust.Huber(1.0)), points, solver=solver, x0=points[:, :1]).x
        tensor([[2.5000]], dtype=torch.float64)
    """

    requires_least_squares = True
    curvature_kind = "gauss_newton"

    def evaluate(self, problem: Problem, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # noqa: D102
        return problem.gauss_newton(x)


class GaussNewton(LevenbergMarquardt):
    """Gauss–Newton steps, safeguarded.

    Starts with a negligible damping (μ₀ = 1e-10 relative), so accepted steps are plain
    Gauss–Newton steps; a step that increases the energy is rejected and damping grows as in
    Levenberg–Marquardt, so the iteration cannot diverge.

    Example:
        >>> import torch, lightning_energy as le
        >>> class Root(le.LeastSquaresEnergy):  # r(x) = x² − c, minimised at x = √c
        ...     def residuals(self, x, inputs):
        ...         return x**2 - inputs
        >>> c = torch.tensor([[4.0], [9.0]], dtype=torch.float64)
        >>> sol = le.argmin(Root(), c, solver=le.GaussNewton(tol=1e-10), x0=torch.ones_like(c))
        >>> sol.x.flatten().round(decimals=6)
        tensor([2., 3.], dtype=torch.float64)
    """

    def __init__(
        self,
        max_steps: int = 50,
        tol: float = 1e-6,
        eta: float = 1e-4,
        dtype: torch.dtype | str | None = None,
        max_damping: float = 1e16,
    ) -> None:
        super().__init__(max_steps=max_steps, tol=tol, initial_damping=1e-10, eta=eta,
                         dtype=dtype, max_damping=max_damping)
