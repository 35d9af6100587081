"""Batched dense damped solves: Cholesky with the documented fallback.

:func:`damped_cholesky_solve` applies the policy of :mod:`lightning_energy.linalg.fallback`
(float64 retry, then more damping, residual-checked) to dense matrices (B, n, n).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_energy.linalg.fallback import LinearSolveInfo, solve_with_fallback

__all__ = ["DenseSystem", "LinearSolveInfo", "add_damping", "damped_cholesky_solve",
           "try_cholesky_solve"]


def add_damping(matrix: Tensor, damping: Tensor | float) -> Tensor:
    """``matrix + λ I`` for matrices (B, n, n) and λ of shape (B,) or a float."""
    n = matrix.shape[-1]
    eye = torch.eye(n, dtype=matrix.dtype, device=matrix.device)
    lam = torch.as_tensor(damping, dtype=matrix.dtype, device=matrix.device)
    return matrix + lam.reshape(-1, 1, 1) * eye


def try_cholesky_solve(
    matrix: Tensor, rhs: Tensor, damping: Tensor | float
) -> tuple[Tensor, Tensor]:
    """Solve (A + λI) z = rhs by Cholesky; returns z (B, n) and a success mask (B,).

    Example:
        >>> import torch
        >>> a = torch.stack([torch.eye(2), -torch.eye(2)]).double()  # the second is indefinite
        >>> z, ok = try_cholesky_solve(a, torch.ones(2, 2, dtype=torch.float64), 0.0)
        >>> z.tolist(), ok.tolist()
        ([[1.0, 1.0], [0.0, 0.0]], [True, False])
    """
    factor, info = torch.linalg.cholesky_ex(add_damping(matrix, damping))
    ok = info == 0
    factor = torch.where(ok[:, None, None], factor, torch.eye(
        matrix.shape[-1], dtype=matrix.dtype, device=matrix.device))
    z = torch.cholesky_solve(rhs.unsqueeze(-1), factor).squeeze(-1)
    return torch.where(ok[:, None], z, torch.zeros_like(z)), ok


class DenseSystem:
    """Dense symmetric matrices (B, n, n) as a :class:`~.fallback.DampedSystem`."""

    def __init__(self, matrix: Tensor) -> None:
        self.matrix = matrix

    def try_solve(self, rhs: Tensor, damping: Tensor) -> tuple[Tensor, Tensor]:  # noqa: D102
        return try_cholesky_solve(self.matrix, rhs, damping)

    def matvec(self, z: Tensor) -> Tensor:  # noqa: D102
        return torch.einsum("bij,bj->bi", self.matrix, z)

    def select(self, index: Tensor) -> DenseSystem:  # noqa: D102
        return DenseSystem(self.matrix[index].double())

    def diagonal_scale(self) -> Tensor:  # noqa: D102
        return self.matrix.diagonal(dim1=-2, dim2=-1).abs().mean(-1)


def damped_cholesky_solve(
    matrix: Tensor, rhs: Tensor, damping: Tensor | float, max_retries: int = 8
) -> tuple[Tensor, LinearSolveInfo]:
    """Solve (A + λI) z = rhs for a batch, with the fallback of :mod:`.fallback`.

    Args:
        matrix: Symmetric matrices A, shape (B, n, n).
        rhs: Right-hand sides, shape (B, n).
        damping: λ ≥ 0, a float or shape (B,).
        max_retries: Damping increases tried after the float64 retry.

    Returns:
        The solutions (B, n) in ``rhs``'s dtype and a :class:`LinearSolveInfo`.

    Example:
        >>> import torch
        >>> a = torch.diag(torch.tensor([1.0, 3.0], dtype=torch.float64)).expand(2, 2, 2)
        >>> lam = torch.tensor([0.0, 1.0], dtype=torch.float64)  # one λ per sample
        >>> z, info = damped_cholesky_solve(a, torch.ones(2, 2, dtype=torch.float64), lam)
        >>> z
        tensor([[1.0000, 0.3333],
                [0.5000, 0.2500]], dtype=torch.float64)
    """
    return solve_with_fallback(DenseSystem(matrix), rhs, damping, max_retries)
