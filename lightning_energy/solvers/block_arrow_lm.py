"""Levenberg–Marquardt with block-arrow (Schur complement) steps, for sequence energies.

The Gauss–Newton matrix of a :class:`~lightning_energy.energies.sequence.SequenceLeastSquaresEnergy`
is block-tridiagonal over the T frames with a dense border for the shared variables. Each damped
step is solved by block-tridiagonal Cholesky and a Schur complement on the shared variables
(:class:`~lightning_energy.linalg.BlockArrowMatrix`): linear in T, where
:class:`~lightning_energy.LevenbergMarquardt` forms and factorises the dense (T·p + s)² matrix.
The iterations (gain ratio, Nielsen's damping rule, stopping) are those of
:class:`~lightning_energy.LevenbergMarquardt`; the two give the same iterates up to rounding.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from lightning_energy.errors import IncompatibleSolverError
from lightning_energy.linalg.block_arrow import BlockArrowMatrix
from lightning_energy.solvers.problem import Problem
from lightning_energy.solvers.trust_region import DenseTrustRegion


# Not mutated: mutmut's per-method trampolines would become members of this runtime-checked
# Protocol that no energy has, so every isinstance check would fail.
@runtime_checkable
class BlockArrowEnergy(Protocol):  # pragma: no mutate block
    """An energy whose Gauss–Newton matrix and Hessian come as block-arrow matrices."""

    frame_size: int
    shared_size: int

    def gauss_newton_block_arrow(self, x: Tensor, inputs: Any, kernel_curvature: bool = False
                                 ) -> tuple[Tensor, Tensor, BlockArrowMatrix]:
        """Energies (B,), gradients (B, n) and Gauss–Newton matrices at flat ``x`` (B, n).

        ``kernel_curvature`` keeps the robust kernels' curvature in the matrices.
        """
        ...

    def hessian_block_arrow(self, x: Tensor, inputs: Any) -> BlockArrowMatrix:
        """Exact Hessians at flat ``x`` (B, n)."""
        ...


class BlockArrowTrustRegion(DenseTrustRegion):
    """Trust-region steps on a block-arrow curvature, packed (B, K) in the solver's state.

    The base of :class:`BlockArrowLevenbergMarquardt` and :class:`BlockArrowNewton`: each damped
    step is a block-tridiagonal Cholesky with a Schur complement on the shared variables
    (:class:`~lightning_energy.linalg.BlockArrowMatrix`); subclasses say which curvature
    (:meth:`evaluate`). Arguments as :class:`~lightning_energy.LevenbergMarquardt`.
    """

    def check(self, energy: Any) -> None:  # noqa: D102
        if not isinstance(energy, BlockArrowEnergy):
            raise IncompatibleSolverError(
                f"{type(self).__name__} needs an energy with gauss_newton_block_arrow(x, "
                f"inputs), hessian_block_arrow(x, inputs), frame_size and shared_size (a "
                f"SequenceLeastSquaresEnergy), got {type(energy).__name__}.")

    def _matrix(self, problem: Problem, packed: Tensor, n: int) -> BlockArrowMatrix:
        energy: Any = problem.energy
        p, s = energy.frame_size, energy.shared_size
        return BlockArrowMatrix.unpack(packed, (n - s) // p, p, s)

    def solve_damped(self, problem: Problem, curvature: Tensor, rhs: Tensor,  # noqa: D102
                     damping: Tensor) -> tuple[Tensor, Tensor]:
        return self._matrix(problem, curvature, rhs.shape[1]).try_solve(rhs, damping)

    def curvature_product(self, problem: Problem, curvature: Tensor,  # noqa: D102
                          d: Tensor) -> Tensor:
        return self._matrix(problem, curvature, d.shape[1]).matvec(d)

    def curvature_scale(self, problem: Problem, curvature: Tensor) -> Tensor:  # noqa: D102
        matrix = self._matrix(problem, curvature, math.prod(problem.shape))
        frames = matrix.diagonal.diagonal(dim1=-2, dim2=-1).abs().amax((-1, -2))
        if matrix.num_shared == 0:
            return frames
        return frames.maximum(matrix.corner.diagonal(dim1=-2, dim2=-1).abs().amax(-1))


class BlockArrowLevenbergMarquardt(BlockArrowTrustRegion):
    """Levenberg–Marquardt whose steps are block-arrow solves (see the module docstring).

    For energies implementing :class:`BlockArrowEnergy` (every
    :class:`~lightning_energy.energies.sequence.SequenceLeastSquaresEnergy`). Pair it with
    ``ImplicitAdjoint(linear_solver=BlockArrow())`` so the backward pass is structured too.

    With ``kernel_curvature`` the curvature keeps the robust kernels' second derivatives
    (ρ' + 2r²ρ'' on each residual, coupled within a kernel's group) and drops only the
    residuals' own curvature (the "robustified" Gauss–Newton of bundle adjustment). Where many
    residuals sit in a kernel's tail, plain Gauss–Newton converges only linearly: on four
    16-frame Human3.6M windows with robust smoothness (``studies/sequence_solvers.py``, one CPU
    thread) it needed 54–64 steps for ‖∇ₓE‖ ≤ 1e-4 (7.4 s), the kernel curvature 15–24
    (3.4 s), :class:`BlockArrowNewton` 12–20 (7.2 s: each step builds the exact Hessian from
    3p + s Hessian-vector products instead of 2p + s Jacobian-vector products); all three
    reached the same minima. Other arguments as
    :class:`~lightning_energy.LevenbergMarquardt`.

    Example:
        >>> import torch, lightning_energy as le
        >>> from lightning_energy.energies.sequence import SequenceLeastSquaresEnergy
        >>> class Track(SequenceLeastSquaresEnergy):
        ...     frame_size = 1
        ...     def frame_residuals(self, frames, shared, inputs):
        ...         return frames - inputs.unsqueeze(-1)
        ...     def pair_residuals(self, frames, shared, inputs):
        ...         return 3 * (frames[:, 1:] - frames[:, :-1])
        >>> data = torch.randn(2, 100, dtype=torch.float64)
        >>> solution = le.BlockArrowLevenbergMarquardt(tol=1e-9).solve(
        ...     le.solvers.Problem(Track(), data, (100,)), torch.zeros(2, 100, dtype=torch.float64))
        >>> bool(solution.converged.all())
        True
    """

    requires_least_squares = True
    curvature_kind = "gauss_newton_block_arrow"

    def __init__(self, max_steps: int = 50, tol: float = 1e-6, initial_damping: float = 1e-3,
                 eta: float = 1e-4, dtype: torch.dtype | str | None = None,
                 max_damping: float = 1e16, kernel_curvature: bool = False) -> None:
        super().__init__(max_steps, tol, initial_damping, eta, dtype, max_damping)
        self.kernel_curvature = kernel_curvature

    def evaluate(self, problem: Problem, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,), gradients (B, n) and the packed Gauss–Newton matrices (B, K)."""
        value, grad, matrix = problem.call("gauss_newton_block_arrow", x, problem.inputs,
                                           self.kernel_curvature)
        return value, grad, matrix.pack()


class BlockArrowNewton(BlockArrowTrustRegion):
    """Trust-region Newton on the exact block-arrow Hessian (``hessian_block_arrow``).

    Where robust kernels sit in their linear tails the Gauss–Newton matrix (IRLS) converges only
    linearly; the exact Hessian keeps the kernels' curvature and converges quadratically near the
    minimum: 12–20 steps on four 16-frame Human3.6M windows where plain Gauss–Newton needed
    54–64 (``studies/sequence_solvers.py``), though each step costs about twice as much (3p + s
    Hessian-vector products against 2p + s Jacobian-vector products). An indefinite H + μI does
    not factorise and counts as a rejected step, so the
    damping grows until it does. ``BlockArrowLevenbergMarquardt(kernel_curvature=True)`` reached
    the same minima 2.1× faster there. Arguments as :class:`~lightning_energy.LevenbergMarquardt`;
    its final Hessian is reused by ``ImplicitAdjoint(linear_solver=BlockArrow())``.

    Example:
        As a sequence task's window solver, with the structured backward to match:

        >>> import lightning_energy as le
        >>> from lightning_energy.linalg import BlockArrow
        >>> from lightning_energy.tasks import SequencePoseTask
        >>> task = SequencePoseTask(solver=le.BlockArrowNewton(max_steps=50, tol=1e-4),
        ...                         adjoint=le.ImplicitAdjoint(1e-2, linear_solver=BlockArrow()))
        >>> task.layer.solver.curvature_kind
        'exact_block_arrow'
    """

    requires_least_squares = False
    curvature_kind = "exact_block_arrow"

    def evaluate(self, problem: Problem, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,), gradients (B, n) and the packed exact Hessians (B, K)."""
        value, grad = problem.value_and_grad(x)
        return value, grad, problem.call("hessian_block_arrow", x, problem.inputs).pack()
