"""Gradient descent with a per-sample adaptive step size (a baseline)."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_energy.solvers.base import Solver, SolverState
from lightning_energy.solvers.problem import Problem
from lightning_energy.solvers.trust_region import below_rounding


class GradientDescent(Solver):
    """Steepest descent x ← x − α∇ₓE with a per-sample step size α.

    A step is accepted when it decreases the energy by at least ``c·α‖∇ₓE‖²`` (Armijo);
    then α grows by ``increase``, else α shrinks by ``decrease`` and the step is retried. The
    state's ``damping`` holds 1/α so diagnostics read the same as for the Newton solvers.

    Args:
        max_steps: Step budget per sample.
        tol: Convergence threshold on ‖∇ₓE‖₂.
        step_size: Initial α.
        increase: Growth of α after an accepted step.
        decrease: Shrink of α after a rejected step.
        armijo: Sufficient-decrease constant c.
        dtype: Solve dtype.
        max_damping: A sample whose 1/α exceeds this is declared ``STALLED``.

    Example:
        >>> import torch, lightning_energy as le
        >>> energy, c = le.QuadraticEnergy(2), torch.zeros(3, 2, dtype=torch.float64)
        >>> sol = le.argmin(energy, c, solver=le.GradientDescent(tol=1e-9, max_steps=2000))
        >>> bool(sol.converged.all()), torch.allclose(sol.x, energy.double().closed_form(c))
        (True, True)
    """

    def __init__(
        self,
        max_steps: int = 500,
        tol: float = 1e-6,
        step_size: float = 1e-2,
        increase: float = 1.2,
        decrease: float = 0.5,
        armijo: float = 1e-4,
        dtype: torch.dtype | str | None = None,
        max_damping: float = 1e16,
    ) -> None:
        super().__init__(max_steps=max_steps, tol=tol, dtype=dtype, max_damping=max_damping)
        if not (step_size > 0 and increase >= 1 and 0 < decrease < 1):
            raise ValueError(
                "Expected `step_size` > 0, `increase` >= 1 and 0 < `decrease` < 1, got "
                f"{step_size}, {increase}, {decrease}."
            )
        self.step_size, self.increase, self.decrease = step_size, increase, decrease
        self.armijo = armijo

    def init(self, problem: Problem, x: Tensor) -> SolverState:  # noqa: D102
        value, grad = problem.value_and_grad(x)
        return SolverState(
            x=x, value=value, grad=grad, damping=torch.full_like(value, 1 / self.step_size),
            growth=torch.ones_like(value),
            num_steps=torch.zeros(x.shape[0], dtype=torch.long, device=x.device),
        )

    def step(self, problem: Problem, state: SolverState) -> SolverState:  # noqa: D102
        alpha = 1 / state.damping
        x_new = state.x - alpha[:, None] * state.grad
        value, grad = problem.value_and_grad(x_new)
        sufficient = state.value - value >= self.armijo * alpha * state.grad_norm**2
        proposal = SolverState(x_new, value, grad, state.damping / self.increase,
                               state.growth, state.num_steps)
        accept = (sufficient | below_rounding(state, proposal)) & torch.isfinite(value)
        accept = accept & torch.isfinite(grad).all(-1)
        rejected = SolverState(state.x, state.value, state.grad, state.damping / self.decrease,
                               state.growth, state.num_steps)
        return rejected.where(accept, proposal)

    def update(self, problem: Problem, x: Tensor, damping: Tensor) -> Tensor:  # noqa: D102
        return x - problem.gradient(x) / damping[:, None]
