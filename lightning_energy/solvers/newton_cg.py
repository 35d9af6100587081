"""Matrix-free trust-region Newton: conjugate gradients on Hessian-vector products."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_energy.linalg.cg import conjugate_gradient
from lightning_energy.solvers.base import Solver, SolverState
from lightning_energy.solvers.problem import Problem
from lightning_energy.solvers.trust_region import gain_ratio_update


class NewtonCG(Solver):
    """Damped Newton whose linear system is solved by CG on Hessian-vector products.

    Never forms a Hessian: each CG iteration costs one batched Hessian-vector product, so memory
    is O(B·n) and n may be in the thousands (long tracks). Negative curvature met by CG rejects
    the step and raises the damping, like a failed factorisation in :class:`Newton`.

    Args:
        max_steps: Outer (Newton) step budget per sample.
        tol: Convergence threshold on ‖∇ₓE‖₂.
        cg_max_iter: CG iterations per step (default: n).
        cg_rtol: Relative residual tolerance of the inner CG.
        initial_damping: μ₀ relative to the curvature along the gradient, gᵀHg / gᵀg.
        eta: Minimum gain ratio for accepting a step.
        dtype: Solve dtype.
        max_damping: Ceiling above which a sample is declared ``STALLED``.

    Example:
        >>> import torch, lightning_energy as le
        >>> solver = le.NewtonCG(tol=1e-8, dtype="float64")
        >>> sol = le.argmin(le.QuadraticEnergy(10), torch.zeros(2, 10), solver=solver)
        >>> sol.x.shape, bool(sol.converged.all())
        (torch.Size([2, 10]), True)
    """

    def __init__(
        self,
        max_steps: int = 50,
        tol: float = 1e-6,
        cg_max_iter: int | None = None,
        cg_rtol: float = 1e-6,
        initial_damping: float = 1e-3,
        eta: float = 1e-4,
        dtype: torch.dtype | str | None = None,
        max_damping: float = 1e16,
    ) -> None:
        super().__init__(max_steps=max_steps, tol=tol, dtype=dtype, max_damping=max_damping)
        self.cg_max_iter = cg_max_iter
        self.cg_rtol = cg_rtol
        self.initial_damping = initial_damping
        self.eta = eta

    def init(self, problem: Problem, x: Tensor) -> SolverState:  # noqa: D102
        value, grad = problem.value_and_grad(x)
        hg = problem.hvp(x, grad)
        gg = (grad * grad).sum(-1)
        scale = ((grad * hg).sum(-1) / torch.clamp(gg, min=torch.finfo(x.dtype).tiny)).abs()
        damping = self.initial_damping * scale + torch.finfo(x.dtype).eps
        return SolverState(
            x=x, value=value, grad=grad, damping=damping, growth=torch.full_like(value, 2.0),
            num_steps=torch.zeros(x.shape[0], dtype=torch.long, device=x.device),
            indefinite=torch.zeros_like(value, dtype=torch.bool),
        )

    def step(self, problem: Problem, state: SolverState) -> SolverState:  # noqa: D102
        x, mu = state.x, state.damping
        hvp = problem.linearize(x)

        def damped(v: Tensor) -> Tensor:
            return hvp(v) + mu[:, None] * v

        d, info = conjugate_gradient(damped, -state.grad, self.cg_max_iter, self.cg_rtol)
        hd = hvp(d)
        predicted = 0.5 * (d * hd).sum(-1) + mu * (d * d).sum(-1)
        value, grad = problem.value_and_grad(x + d)
        proposal = SolverState(x + d, value, grad, mu, state.growth, state.num_steps)
        return gain_ratio_update(state, proposal, predicted, ~info.negative_curvature, self.eta)

    def update(self, problem: Problem, x: Tensor, damping: Tensor) -> Tensor:  # noqa: D102
        grad = problem.gradient(x)
        hvp = problem.linearize(x)

        def damped(v: Tensor) -> Tensor:
            return hvp(v) + damping[:, None] * v

        step, _ = conjugate_gradient(damped, -grad, self.cg_max_iter, self.cg_rtol)
        return x + step
