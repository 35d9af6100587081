"""The result of a batched inner solve: :class:`Solution` and per-sample :class:`SolverStatus`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


class SolverStatus(enum.IntEnum):
    """Per-sample outcome of a solve, stored as integer codes in :attr:`Solution.status`.

    Example:
        >>> import torch, lightning_energy as le
        >>> sol = le.argmin(le.QuadraticEnergy(2), torch.zeros(2, 2),
        ...                 solver=le.Newton(dtype="float64"))
        >>> [le.SolverStatus(code).name for code in sol.status.tolist()]
        ['CONVERGED', 'CONVERGED']
        >>> int(le.SolverStatus.STALLED)
        3
    """

    CONVERGED = 0
    """The gradient norm reached ``tol``."""
    MAX_STEPS = 1
    """``max_steps`` ran out before the gradient norm reached ``tol``."""
    NONFINITE = 2
    """The energy or its gradient became NaN or infinite."""
    STALLED = 3
    """No step could be accepted: the damping grew past its ceiling (often a non-smooth point)."""
    NOT_POSITIVE_DEFINITE = 4
    """The step budget ran out while the damped Hessian H + μI was still not positive definite
    (the damping had not yet grown past H's most negative eigenvalue)."""


@dataclass
class Solution:
    """A batch of minimisers and how they were obtained.

    Attributes:
        x: Minimisers, shape (B, *shape); differentiable when returned by an ``EnergyLayer``.
        value: Energies at ``x``, shape (B,).
        status: :class:`SolverStatus` codes, shape (B,), int64.
        converged: ``status == CONVERGED``, shape (B,), bool.
        num_steps: Solver steps taken per sample, shape (B,), int64.
        grad_norm: Euclidean norm of ∇ₓE at ``x``, shape (B,).
        damping: Final damping (trust-region parameter) of the solver, shape (B,).
        diagnostics: Extra scalars filled in by the layer and the adjoint (masked-sample count,
            backward damping, linear-solve fallbacks). The adjoint writes into it during the
            backward pass, so read it after ``loss.backward()``.
        curvature: The solver's last curvature at ``x``, handed to an implicit adjoint using the
            same kind of Hessian so that the backward pass need not recompute it (the adjoint
            keeps it with the autograd graph and clears this field): dense matrices (B, n, n),
            or block-arrow blocks packed as (B, K) (``BlockArrowMatrix.pack``); ``None`` for
            matrix-free solvers.
        curvature_kind: ``"exact"``, ``"gauss_newton"``, ``"exact_block_arrow"`` or
            ``"gauss_newton_block_arrow"`` for ``curvature``, else ``None``.

    Example:
        >>> import torch, lightning_energy as le
        >>> sol = le.argmin(le.QuadraticEnergy(2), torch.zeros(3, 2),
        ...                 solver=le.Newton(dtype="float64"))
        >>> sol.x.shape, sol.converged.tolist(), sol.num_nonconverged
        (torch.Size([3, 2]), [True, True, True], 0)
        >>> sol.status_counts()["converged"]
        3
    """

    x: Tensor
    value: Tensor
    status: Tensor
    converged: Tensor
    num_steps: Tensor
    grad_norm: Tensor
    damping: Tensor
    diagnostics: dict[str, Any] = field(default_factory=dict)
    curvature: Tensor | None = field(default=None, repr=False)
    curvature_kind: str | None = None

    @property
    def num_nonconverged(self) -> int:
        """Number of samples whose solve did not converge (a host sync)."""
        return int((~self.converged).sum())

    def status_counts(self) -> dict[str, int]:
        """How many samples ended in each :class:`SolverStatus` (a host sync)."""
        counts = torch.bincount(self.status.flatten().cpu(), minlength=len(SolverStatus))
        return {s.name.lower(): int(counts[s.value]) for s in SolverStatus}
