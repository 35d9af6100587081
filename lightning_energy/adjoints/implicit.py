"""The trust-region implicit adjoint (Wibergian learning).

At a minimum x*, treat x* as the fixed point of the damped Newton step x ← x − (H + λI)⁻¹∇ₓE(x; θ)
with H = ∇²ₓE(x*) held fixed, and differentiate that step once:

    dL/dθ = −(∂∇ₓE/∂θ)ᵀ v,   v = (H + λI)⁻¹ dL/dx*,

the same for every floating input tensor. The backward pass is one batched damped solve plus one
vector–Jacobian product of ∇ₓE (the reverse-mode gradient of the directional derivative
∇ₓE·(−v), a forward-mode product inside one reverse pass). λ = 0 gives the exact implicit-function-
theorem gradient; λ > 0 bounds ‖v‖ by ‖dL/dx*‖/λ when H is positive semi-definite, and biases the
gradient by about λ/σ_min(H) relative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.func import jvp

from lightning_energy.adjoints.base import Adjoint, differentiable_leaves
from lightning_energy.energies.base import Energy, LeastSquaresEnergy
from lightning_energy.errors import IncompatibleSolverError
from lightning_energy.linalg.block_arrow import BlockArrowMatrix
from lightning_energy.linalg.solvers import (
    Banded,
    BlockArrow,
    Cholesky,
    ConjugateGradient,
    LinearSolver,
)
from lightning_energy.solvers.base import Solver
from lightning_energy.solvers.precision import no_autocast
from lightning_energy.solvers.problem import Problem
from lightning_energy.solvers.solution import Solution

_HESSIANS = ("exact", "gauss_newton", "cg")


class ImplicitAdjoint(Adjoint):
    """Trust-region implicit differentiation of the argmin.

    Args:
        damping: λ ≥ 0, or ``"auto"``: per sample λ = max(0, −μ_min(H)) + ``auto_margin``·
            max|μ(H)| with μ(H) the eigenvalues of H, so that the smallest eigenvalue of H + λI is
            ``auto_margin`` times H's spectral radius (indefinite Hessians included). With a
            :class:`~lightning_energy.linalg.ConjugateGradient` solver the spectral radius is
            estimated by power iteration and λ is raised tenfold for samples whose CG meets
            negative curvature; :class:`~lightning_energy.linalg.Banded` and
            :class:`~lightning_energy.linalg.BlockArrow` take a number only.
        hessian: ``"exact"`` (∇²ₓE) or ``"gauss_newton"`` (JᵀWJ of a
            :class:`~lightning_energy.LeastSquaresEnergy`; biased where residuals do not vanish).
            ``"cg"`` is shorthand for ``"exact"`` with ``linear_solver=ConjugateGradient()``.
        linear_solver: How (H + λI) v = dL/dx* is solved: ``Cholesky()`` (dense, the default),
            ``ConjugateGradient(max_iter, rtol)`` (matrix-free, for large n) or
            ``Banded(dense_below)`` (for energies with ``hessian_bands``, e.g. tracker fusion) or
            ``BlockArrow()`` (for sequence energies with ``hessian_block_arrow``).
        auto_margin: Margin of the ``"auto"`` rule.
        newton_step: Return x* − (H + λI)⁻¹∇ₓE(x*) as the forward value instead of x* itself.

    Example:
        >>> import torch, lightning_energy as le
        >>> layer = le.EnergyLayer(le.QuadraticEnergy(2), le.Newton(), le.ImplicitAdjoint(1e-3))
        >>> layer(torch.zeros(3, 2)).x.shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        damping: float | str = 1e-2,
        hessian: str = "exact",
        linear_solver: LinearSolver | None = None,
        auto_margin: float = 1e-3,
        newton_step: bool = False,
    ) -> None:
        if hessian not in _HESSIANS:
            raise ValueError(f"Expected `hessian` to be one of {_HESSIANS}, got {hessian!r}.")
        if damping != "auto" and not (isinstance(damping, int | float) and damping >= 0):
            raise ValueError(f"Expected `damping` to be a float >= 0 or 'auto', got {damping!r}.")
        if hessian == "cg":
            if linear_solver is not None and not isinstance(linear_solver, ConjugateGradient):
                raise ValueError(f"`hessian='cg'` means linear_solver=ConjugateGradient(); got "
                                 f"`linear_solver`={linear_solver!r}.")
            hessian, linear_solver = "exact", linear_solver or ConjugateGradient()
        linear_solver = Cholesky() if linear_solver is None else linear_solver
        if damping == "auto" and not linear_solver.supports_auto:
            raise ValueError(f"Expected a float `damping` with {linear_solver!r}, got 'auto'.")
        if hessian == "gauss_newton" and not isinstance(linear_solver, Cholesky):
            raise ValueError(f"`hessian='gauss_newton'` needs linear_solver=Cholesky(), got "
                             f"{linear_solver!r}.")
        self.damping, self.hessian, self.linear_solver = damping, hessian, linear_solver
        self.auto_margin, self.newton_step = auto_margin, newton_step

    def __repr__(self) -> str:
        return (f"ImplicitAdjoint(damping={self.damping!r}, hessian={self.hessian!r}, "
                f"linear_solver={self.linear_solver!r})")

    def check(self, energy: Energy, solver: Solver) -> None:  # noqa: D102
        if self.hessian == "gauss_newton" and not isinstance(energy, LeastSquaresEnergy):
            raise IncompatibleSolverError(
                f"ImplicitAdjoint(hessian='gauss_newton') needs a LeastSquaresEnergy, got "
                f"{type(energy).__name__}; use hessian='exact'."
            )
        for kind, method in ((Banded, "hessian_bands"), (BlockArrow, "hessian_block_arrow")):
            if isinstance(self.linear_solver, kind) and not callable(getattr(energy, method, None)):
                raise IncompatibleSolverError(
                    f"ImplicitAdjoint(linear_solver={self.linear_solver!r}) needs an energy with "
                    f"{method}(x, inputs), got {type(energy).__name__}.")

    def solve(  # noqa: D102
        self, energy: Energy, solver: Solver, inputs: Any, x0: Tensor,
        shape: tuple[int, ...], mask_nonconverged: bool,
    ) -> Solution:
        frozen = Problem(energy, inputs, shape, x0.dtype, detach=True)
        solution = solver.solve(frozen, x0)
        flat = solution.x.reshape(x0.shape[0], -1)
        if not self._reuses(solution.curvature_kind):
            solution.curvature = None  # not the Hessian this adjoint uses: free it
        if self.newton_step:
            with torch.no_grad():
                step, _ = self.damped_solve(frozen, flat, -frozen.gradient(flat),
                                            solution.curvature)
            flat = flat + step
            solution.curvature = None  # H was taken at x*, not at the returned point
        live = differentiable_leaves(energy, inputs)
        if torch.is_grad_enabled() and live:
            keep = solution.converged if mask_nonconverged else torch.ones_like(solution.converged)
            context = _Context(self, energy, inputs, shape, x0.dtype, keep, solution)
            flat = _ImplicitArgmin.apply(context, flat, *live)
        solution.curvature = None  # autograd holds it when a backward pass will need it
        solution.x = flat.reshape(solution.x.shape)
        return solution

    def _reuses(self, kind: str | None) -> bool:
        """Whether a solver's final curvature of ``kind`` is the H this adjoint needs."""
        if kind == "exact_block_arrow":  # packed blocks of the exact Hessian
            return self.hessian == "exact" and isinstance(self.linear_solver, BlockArrow)
        return kind == self.hessian

    def damped_solve(
        self, problem: Problem, x: Tensor, rhs: Tensor, hessian: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Solve (H + λI) v = rhs at ``x`` (B, n) for the configured Hessian and damping.

        ``hessian``, when given, is H at ``x`` (the solver's own final curvature): dense
        (B, n, n), or block-arrow blocks packed as (B, K) for the ``BlockArrow`` solver.
        """
        curvature = ProblemHessian(problem, x, self.hessian, hessian)
        return self.linear_solver.solve(curvature, rhs, self.damping, self.auto_margin)


class ProblemHessian:
    """The :class:`~lightning_energy.linalg.Curvature` of a problem at ``x`` (B, n).

    Args:
        problem: The energy bound to its inputs.
        x: Where H is taken.
        kind: ``"exact"`` or ``"gauss_newton"``.
        known: H at ``x`` when already known: dense (B, n, n) or packed block-arrow blocks
            (B, K); else None.
    """

    def __init__(self, problem: Problem, x: Tensor, kind: str, known: Tensor | None) -> None:
        self.problem, self.x, self.kind = problem, x, kind
        packed = known is not None and known.ndim == 2
        self._dense = None if packed else known
        self._packed = known if packed else None

    def dense(self) -> Tensor:  # noqa: D102
        if self._dense is None:
            self._dense = (self.problem.hessian(self.x) if self.kind == "exact"
                           else self.problem.gauss_newton(self.x)[2])
        return self._dense

    def matvec(self) -> Callable[[Tensor], Tensor]:  # noqa: D102
        return self.problem.linearize(self.x)

    def bands(self) -> Tensor:  # noqa: D102
        return self.problem.call("hessian_bands", self.x, self.problem.inputs)

    def block_arrow(self) -> BlockArrowMatrix:  # noqa: D102
        if self._packed is not None:
            energy: Any = self.problem.energy
            p, s = energy.frame_size, energy.shared_size
            return BlockArrowMatrix.unpack(self._packed, (self.x.shape[1] - s) // p, p, s)
        return self.problem.call("hessian_block_arrow", self.x, self.problem.inputs)


class _Context:
    """What the backward pass needs, kept off the autograd graph's saved tensors."""

    def __init__(self, adjoint: ImplicitAdjoint, energy: Energy, inputs: Any,
                 shape: tuple[int, ...], dtype: torch.dtype | None, keep: Tensor,
                 solution: Solution) -> None:
        self.adjoint, self.energy, self.inputs = adjoint, energy, inputs
        self.shape, self.dtype, self.keep, self.solution = shape, dtype, keep, solution


class _ImplicitArgmin(torch.autograd.Function):
    """Identity on x* forward; the trust-region implicit rule backward."""

    @staticmethod
    def forward(ctx: Any, context: _Context, x: Tensor, *live: Tensor) -> Tensor:
        ctx.context = context
        ctx.num_live = len(live)
        curvature = context.solution.curvature
        ctx.save_for_backward(x, *([] if curvature is None else [curvature]))
        context.solution.curvature = None  # held by autograd until backward, not twice
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad_x: Tensor) -> tuple[Tensor | None, ...]:
        c: _Context = ctx.context
        saved: tuple[Tensor, ...] = ctx.saved_tensors
        x, curvature = saved[0], saved[1:]
        x = x.detach()  # re-entering autograd through the saved output would recurse
        rhs = torch.where(c.keep[:, None], grad_x.to(x.dtype), 0)
        frozen = Problem(c.energy, c.inputs, c.shape, c.dtype, detach=True)
        with torch.no_grad(), no_autocast(x.device):  # a backward inside autocast: same policy
            v, stats = c.adjoint.damped_solve(frozen, x, rhs, curvature[0] if curvature else None)
        with torch.enable_grad(), no_autocast(x.device):
            live_problem = Problem(c.energy, c.inputs, c.shape, c.dtype, detach=False)
            directional = jvp(lambda z: live_problem.value(z).sum(), (x,), (-v,))[1]
            leaves = differentiable_leaves(c.energy, c.inputs)
            grads = torch.autograd.grad(directional, leaves, allow_unused=True)
        c.solution.diagnostics.update({f"backward/{k}": val for k, val in stats.items()})
        return (None, None, *grads)
