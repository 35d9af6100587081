"""Batched dense damped solves: Cholesky with a documented fallback.

Fallback policy of :func:`damped_cholesky_solve` (a factorisation can fail silently in float32 on a
near-singular matrix, so ``info`` is always read):

1. factorise ``A + λI`` for the whole batch with ``cholesky_ex``;
2. samples whose factorisation failed, or whose solution leaves a relative residual
   ‖(A + λI)z − rhs‖ / ‖rhs‖ above √eps of the dtype (float32 factorisations of near-singular
   matrices can "succeed" and return a solution that is wrong by 100%), are re-solved in float64
   with the same λ;
3. samples that still fail get λ ← max(10 λ, 1e-10·(1 + mean |diag A|)) up to ``max_retries`` times;
4. samples that never factorise are flagged ``failed`` and get a zero solution.

The damping actually used and the flags are returned in :class:`LinearSolveInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class LinearSolveInfo:
    """Per-sample record of a batched damped solve.

    Attributes:
        damping: Damping λ actually used, shape (B,).
        retried: Whether the sample needed the float64 or extra-damping fallback, shape (B,).
        failed: Whether no factorisation succeeded (the solution is zero there), shape (B,).
    """

    damping: Tensor
    retried: Tensor
    failed: Tensor


def add_damping(matrix: Tensor, damping: Tensor | float) -> Tensor:
    """``matrix + λ I`` for matrices (B, n, n) and λ of shape (B,) or a float."""
    n = matrix.shape[-1]
    eye = torch.eye(n, dtype=matrix.dtype, device=matrix.device)
    lam = torch.as_tensor(damping, dtype=matrix.dtype, device=matrix.device)
    return matrix + lam.reshape(-1, 1, 1) * eye


def try_cholesky_solve(
    matrix: Tensor, rhs: Tensor, damping: Tensor | float
) -> tuple[Tensor, Tensor]:
    """Solve (A + λI) z = rhs by Cholesky; returns z (B, n) and a success mask (B,)."""
    factor, info = torch.linalg.cholesky_ex(add_damping(matrix, damping))
    ok = info == 0
    factor = torch.where(ok[:, None, None], factor, torch.eye(
        matrix.shape[-1], dtype=matrix.dtype, device=matrix.device))
    z = torch.cholesky_solve(rhs.unsqueeze(-1), factor).squeeze(-1)
    return torch.where(ok[:, None], z, torch.zeros_like(z)), ok


def accurate(matrix: Tensor, rhs: Tensor, damping: Tensor, z: Tensor) -> Tensor:
    """Per sample (B,): relative residual of (A + λI) z = rhs at most √eps of the dtype."""
    residual = torch.einsum("bij,bj->bi", matrix, z) + damping[:, None] * z - rhs
    scale = torch.linalg.vector_norm(rhs, dim=-1).clamp_min(torch.finfo(rhs.dtype).tiny)
    return torch.linalg.vector_norm(residual, dim=-1) <= torch.finfo(rhs.dtype).eps ** 0.5 * scale


def damped_cholesky_solve(
    matrix: Tensor, rhs: Tensor, damping: Tensor | float, max_retries: int = 8
) -> tuple[Tensor, LinearSolveInfo]:
    """Solve (A + λI) z = rhs for a batch, with the fallback described in the module docstring.

    Args:
        matrix: Symmetric matrices A, shape (B, n, n).
        rhs: Right-hand sides, shape (B, n).
        damping: λ ≥ 0, a float or shape (B,).
        max_retries: Damping increases tried after the float64 retry.

    Returns:
        The solutions (B, n) in ``rhs``'s dtype and a :class:`LinearSolveInfo`.
    """
    batch = matrix.shape[0]
    lam = torch.as_tensor(damping, dtype=matrix.dtype, device=matrix.device).expand(batch).clone()
    z, ok = try_cholesky_solve(matrix, rhs, lam)
    ok = ok & accurate(matrix, rhs, lam, z)
    retried = ~ok
    if bool(ok.all()):
        return z, LinearSolveInfo(lam, retried, ~ok)
    idx = (~ok).nonzero().squeeze(-1)
    sub_a, sub_b = matrix[idx].double(), rhs[idx].double()
    sub_lam = lam[idx].double()
    floor = 1e-10 * (1 + sub_a.diagonal(dim1=-2, dim2=-1).abs().mean(-1))
    sub_z, sub_ok = try_cholesky_solve(sub_a, sub_b, sub_lam)
    for _ in range(max_retries):
        if bool(sub_ok.all()):
            break
        sub_lam = torch.where(sub_ok, sub_lam, torch.maximum(10 * sub_lam, floor))
        new_z, new_ok = try_cholesky_solve(sub_a, sub_b, sub_lam)
        sub_z = torch.where(sub_ok[:, None], sub_z, new_z)
        sub_ok = sub_ok | new_ok
    z = z.index_put((idx,), sub_z.to(z.dtype))
    lam = lam.index_put((idx,), sub_lam.to(lam.dtype))
    ok = ok.index_put((idx,), sub_ok)
    return z, LinearSolveInfo(lam, retried, ~ok)
