"""Damped (Levenberg–Marquardt style) trust-region Newton iterations shared by several solvers.

A step solves (H + μI) d = −g, then compares the actual decrease of E with the decrease the
quadratic model predicts, ρ = (E(x) − E(x+d)) / (½ dᵀHd + μ‖d‖²). Per sample: ρ > η accepts the
step and shrinks μ by max(1/3, 1 − (2ρ − 1)³); otherwise the step is rejected and μ grows by a
factor that doubles on each consecutive rejection (Nielsen's rule). A failed factorisation (H + μI
not positive definite) counts as a rejection, so indefinite Hessians are handled by damping.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from lightning_energy.linalg.dense import try_cholesky_solve
from lightning_energy.solvers.base import Solver, SolverState
from lightning_energy.solvers.problem import Problem


def below_rounding(state: SolverState, proposal: SolverState) -> Tensor:
    """Steps whose energy change is lost in rounding, judged by the gradient norm instead.

    Near a minimum E(x) − E(x + d) is below the float resolution of E, so the gain ratio is noise;
    such a step is accepted when it reduces ‖∇ₓE‖ (B,).
    """
    resolution = 64 * torch.finfo(state.value.dtype).eps * (1 + state.value.abs())
    small = (state.value - proposal.value).abs() <= resolution
    return small & (proposal.grad_norm < state.grad_norm)


def gain_ratio_update(
    state: SolverState, proposal: SolverState, predicted: Tensor, ok: Tensor, eta: float
) -> SolverState:
    """Accept or reject ``proposal`` per sample and update the damping (Nielsen's rule)."""
    actual = state.value - proposal.value
    rho = actual / torch.clamp(predicted, min=torch.finfo(predicted.dtype).tiny)
    finite = torch.isfinite(proposal.value) & torch.isfinite(proposal.grad).all(-1)
    accept = ok & finite & (((rho > eta) & (predicted > 0)) | below_rounding(state, proposal))
    # A step accepted below rounding has a meaningless ρ: treat it as a perfect model fit (ρ = 1).
    rho = torch.where(torch.isfinite(rho) & (rho > 0), torch.clamp(rho, max=1.0), 1.0)
    shrink = torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3)
    proposal.damping = state.damping * shrink
    proposal.growth = torch.full_like(state.growth, 2.0)
    rejected = SolverState(
        x=state.x, value=state.value, grad=state.grad, damping=state.damping * state.growth,
        growth=state.growth * 2, num_steps=state.num_steps, curvature=state.curvature,
    )
    result = rejected.where(accept, proposal)
    result.indefinite = ~ok
    return result


class DenseTrustRegion(Solver):
    """Trust-region Newton with a dense per-sample curvature matrix (B, n, n).

    Subclasses define :meth:`evaluate` (energy, gradient and curvature at a point); a subclass
    that keeps the curvature in another storage overrides :meth:`solve_damped`,
    :meth:`curvature_product` and :meth:`curvature_scale` too.

    Args:
        max_steps: Step budget per sample.
        tol: Convergence threshold on ‖∇ₓE‖₂.
        initial_damping: μ₀ relative to the largest |diagonal| entry of the curvature.
        eta: Minimum gain ratio for accepting a step.
        dtype: Solve dtype (``"float64"`` to solve in double whatever the network's precision).
        max_damping: Ceiling above which a sample is declared ``STALLED``.
    """

    def __init__(
        self,
        max_steps: int = 50,
        tol: float = 1e-6,
        initial_damping: float = 1e-3,
        eta: float = 1e-4,
        dtype: torch.dtype | str | None = None,
        max_damping: float = 1e16,
    ) -> None:
        super().__init__(max_steps=max_steps, tol=tol, dtype=dtype, max_damping=max_damping)
        self.initial_damping = initial_damping
        self.eta = eta

    @abstractmethod
    def evaluate(self, problem: Problem, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,), gradients (B, n) and curvature matrices (B, n, n) at ``x``."""

    def solve_damped(self, problem: Problem, curvature: Tensor, rhs: Tensor,
                     damping: Tensor) -> tuple[Tensor, Tensor]:
        """(C + μI)⁻¹ rhs (B, n) for the state's curvature C, and a success mask (B,)."""
        return try_cholesky_solve(curvature, rhs, damping)

    def curvature_product(self, problem: Problem, curvature: Tensor, d: Tensor) -> Tensor:
        """C d (B, n) for the state's curvature C."""
        return torch.einsum("bij,bj->bi", curvature, d)

    def curvature_scale(self, problem: Problem, curvature: Tensor) -> Tensor:
        """Largest |diagonal entry| of C (B,): the scale of the first damping."""
        return curvature.diagonal(dim1=-2, dim2=-1).abs().amax(-1)

    def init(self, problem: Problem, x: Tensor) -> SolverState:  # noqa: D102
        value, grad, curvature = self.evaluate(problem, x)
        scale = self.curvature_scale(problem, curvature)
        damping = self.initial_damping * scale + torch.finfo(x.dtype).eps
        return SolverState(
            x=x, value=value, grad=grad, damping=damping, growth=torch.full_like(value, 2.0),
            num_steps=torch.zeros(x.shape[0], dtype=torch.long, device=x.device),
            curvature=curvature, indefinite=torch.zeros_like(value, dtype=torch.bool),
        )

    def step(self, problem: Problem, state: SolverState) -> SolverState:  # noqa: D102
        assert state.curvature is not None
        d, ok = self.solve_damped(problem, state.curvature, -state.grad, state.damping)
        hd = self.curvature_product(problem, state.curvature, d)
        predicted = 0.5 * (d * hd).sum(-1) + state.damping * (d * d).sum(-1)
        x_new = state.x + d
        value, grad, curvature = self.evaluate(problem, x_new)
        proposal = SolverState(x_new, value, grad, state.damping, state.growth,
                               state.num_steps, curvature)
        return gain_ratio_update(state, proposal, predicted, ok, self.eta)

    def update(self, problem: Problem, x: Tensor, damping: Tensor) -> Tensor:  # noqa: D102
        _, grad, curvature = self.evaluate(problem, x)
        step, _ = self.solve_damped(problem, curvature, -grad, damping)
        return x + step
