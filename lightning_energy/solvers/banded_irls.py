"""Iteratively reweighted least squares with banded solves (banded normal equations).

The tracker-fusion energy's four coordinates decouple, and each one's IRLS matrix is a symmetric
pentadiagonal T×T matrix, so a step is 4·B small banded solves
(:func:`~lightning_energy.linalg.solve_bands`): dense batched Cholesky for training windows
(differentiable, so ``UnrolledAdjoint`` works through it), LAPACK's banded Cholesky for whole
sequences of thousands of frames. The solver talks to the energy only through its
``normal_bands(x, inputs)`` method (see :class:`BandedEnergy`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from lightning_energy.errors import IncompatibleSolverError
from lightning_energy.linalg.banded import band_matvec, solve_bands
from lightning_energy.solvers.base import Solver, SolverState
from lightning_energy.solvers.problem import Problem


@runtime_checkable
class BandedEnergy(Protocol):
    """An energy whose IRLS system and Hessian come as C interleaved pentadiagonal blocks."""

    def normal_bands(self, x: Tensor, inputs: Any) -> tuple[Tensor, Tensor]:
        """IRLS bands (B, C, 3, T) and right-hand sides (B, C, T) at flat ``x`` (B, T·C)."""
        ...

    def hessian_bands(self, x: Tensor, inputs: Any) -> Tensor:
        """Bands (B, C, 3, T) of the exact Hessian at flat ``x`` (B, T·C)."""
        ...


class BandedIRLS(Solver):
    """Iteratively reweighted least squares with banded solves, for :class:`TrackFusionEnergy`.

    Each step minimises the quadratic majoriser of the robust energy at the current iterate
    exactly (4·B banded systems, see :func:`solve_bands`), so the energy never increases and no
    damping is needed; a step that increases the energy is rejected and the sample marked
    stalled. The gradient comes for free from the same system: ∇ₓE(x) = A(x)·x − b(x) (exact,
    since the IRLS weights are ρ'(e²)), so a step costs one energy evaluation, one assembly and
    one banded solve, with no automatic differentiation. Converged when ‖∇ₓE‖₂ ≤ ``tol``.

    Args:
        max_steps: IRLS steps per sample.
        tol: Gradient-norm threshold.
        dtype: Solve dtype (default float64).
        dense_below: Windows shorter than this use dense Cholesky (differentiable, as
            ``UnrolledAdjoint`` needs); longer ones LAPACK's banded Cholesky.
    """

    def __init__(
        self, max_steps: int = 50, tol: float = 1e-6, dtype: torch.dtype | str | None = "float64",
        dense_below: int = 256,
    ) -> None:
        super().__init__(max_steps=max_steps, tol=tol, dtype=dtype, max_damping=0.5)
        self.dense_below = dense_below

    def check(self, energy: Any) -> None:  # noqa: D102
        if not isinstance(energy, BandedEnergy):
            raise IncompatibleSolverError(
                f"BandedIRLS needs an energy with normal_bands(x, inputs) and "
                f"hessian_bands(x, inputs) (a TrackFusionEnergy), got {type(energy).__name__}.")

    @staticmethod
    def _evaluate(problem: Problem, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,), gradients (B, n) and the IRLS system (B, 4, 4, T) at flat ``x``."""
        bands, rhs = problem.call("normal_bands", x, problem.inputs)
        z = x.reshape(x.shape[0], -1, 4).permute(0, 2, 1)
        grad = (band_matvec(bands, z) - rhs).permute(0, 2, 1).reshape(x.shape)
        system = torch.cat([bands, rhs[:, :, None]], 2)
        return problem.value(x), grad, system

    def init(self, problem: Problem, x: Tensor) -> SolverState:  # noqa: D102
        value, grad, system = self._evaluate(problem, x)
        zeros = torch.zeros_like(value)
        return SolverState(x, value, grad, zeros, torch.ones_like(value),
                           torch.zeros(x.shape[0], dtype=torch.long, device=x.device), system)

    def step(self, problem: Problem, state: SolverState) -> SolverState:  # noqa: D102
        assert state.curvature is not None
        z = solve_bands(state.curvature[:, :, :3], state.curvature[:, :, 3], self.dense_below)
        x_new = z.permute(0, 2, 1).reshape(state.x.shape)
        value, grad, system = self._evaluate(problem, x_new)
        resolution = 64 * torch.finfo(value.dtype).eps * (1 + state.value.abs())
        better = torch.isfinite(value) & (value <= state.value + resolution)
        proposal = SolverState(x_new, value, grad, state.damping, state.growth, state.num_steps,
                               system)
        stalled = SolverState(state.x, state.value, state.grad, torch.ones_like(value),
                              state.growth, state.num_steps, state.curvature)
        return stalled.where(better, proposal)

    def update(self, problem: Problem, x: Tensor, damping: Tensor) -> Tensor:
        """One IRLS step from flat ``x`` (B, n) (differentiable on the dense path)."""
        bands, rhs = problem.call("normal_bands", x, problem.inputs)
        z = solve_bands(bands, rhs, self.dense_below)  # (B, 4, T)
        return z.permute(0, 2, 1).reshape(x.shape)
