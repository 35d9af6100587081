"""Adjoints that differentiate through solver steps: unrolled and truncated."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_energy.adjoints.base import Adjoint, mask_gradient
from lightning_energy.energies.base import Energy
from lightning_energy.solvers.base import Solver
from lightning_energy.solvers.problem import Problem
from lightning_energy.solvers.solution import Solution


class UnrolledAdjoint(Adjoint):
    """Backpropagate through every solver step (autograd through the whole iteration).

    Exact for the iterate actually returned, but memory grows linearly with the number of steps;
    a baseline and a test oracle for :class:`~lightning_energy.ImplicitAdjoint`.

    Example:
        >>> import torch, lightning_energy as le
        >>> layer = le.EnergyLayer(le.QuadraticEnergy(2), le.Newton(tol=1e-9, dtype="float64"),
        ...                        le.UnrolledAdjoint())
        >>> c = torch.randn(4, 2, requires_grad=True)
        >>> layer(c).x.sum().backward()  # through every Newton step
        >>> c.grad.shape
        torch.Size([4, 2])
    """

    def solve(  # noqa: D102
        self, energy: Energy, solver: Solver, inputs: Any, x0: Tensor,
        shape: tuple[int, ...], mask_nonconverged: bool,
    ) -> Solution:
        problem = Problem(energy, inputs, shape, x0.dtype, detach=False)
        with torch.enable_grad() if torch.is_grad_enabled() else torch.no_grad():
            state = solver.run(problem, x0)
        solution = solver.to_solution(problem, state)
        if mask_nonconverged:
            solution.x = mask_gradient(solution.x, solution.converged)
        return solution


class TruncatedAdjoint(Adjoint):
    """Differentiate only ``steps`` applications of the solver's update map at the solution.

    The solver first converges without autograd; then the solver's own update (for the Newton
    family x ← x − (C(x) + μI)⁻¹∇ₓE(x) with the final per-sample damping μ, for gradient descent
    x ← x − ∇ₓE/μ) is applied ``steps`` times from the detached solution with autograd on.
    Unlike the implicit adjoint this differentiates through the curvature C(x) too. Memory grows
    with ``steps``, not with the solver's step count.

    Args:
        steps: Number of differentiated update applications (≥ 1).

    Example:
        >>> import torch, lightning_energy as le
        >>> layer = le.EnergyLayer(le.QuadraticEnergy(2), le.Newton(tol=1e-9, dtype="float64"),
        ...                        le.TruncatedAdjoint(steps=2))
        >>> c = torch.randn(4, 2, requires_grad=True)
        >>> layer(c).x.sum().backward()
        >>> c.grad.shape
        torch.Size([4, 2])
    """

    def __init__(self, steps: int = 1) -> None:
        if steps < 1:
            raise ValueError(f"Expected `steps` >= 1, got {steps}.")
        self.steps = steps

    def solve(  # noqa: D102
        self, energy: Energy, solver: Solver, inputs: Any, x0: Tensor,
        shape: tuple[int, ...], mask_nonconverged: bool,
    ) -> Solution:
        frozen = Problem(energy, inputs, shape, x0.dtype, detach=True)
        solution = solver.solve(frozen, x0)
        if not torch.is_grad_enabled():
            return solution
        live = Problem(energy, inputs, shape, x0.dtype, detach=False)
        x = solution.x.reshape(x0.shape[0], -1).detach()
        for _ in range(self.steps):
            x = solver.update(live, x, solution.damping)
        x = x.reshape(solution.x.shape)
        # The value stays x* (the updates only carry the gradient): x* + (x_k - x_k.detach()).
        solution.x = solution.x + (x - x.detach())
        if mask_nonconverged:
            solution.x = mask_gradient(solution.x, solution.converged)
        return solution
