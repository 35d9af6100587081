"""The damped-solve fallback of the batched factorisations (dense and block-arrow).

A batched factorisation can fail silently in float32 on a near-singular matrix, so every solve
reads its success flags and checks its residual. Policy of :func:`solve_with_fallback`:

1. factorise ``A + λI`` for the whole batch;
2. samples whose factorisation failed, or whose solution leaves a relative residual
   ‖(A + λI)z − rhs‖ / ‖rhs‖ above √eps of the dtype (float32 factorisations of near-singular
   matrices can "succeed" and return a solution that is wrong by 100%), are re-solved in float64
   with the same λ;
3. samples that still fail get λ ← max(10 λ, 1e-10·(1 + mean |diag A|)) up to ``max_retries`` times;
4. samples that never factorise are flagged ``failed`` and get a zero solution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch
from torch import Tensor

System = TypeVar("System", bound="DampedSystem")


@dataclass
class LinearSolveInfo:
    """Per-sample record of a batched damped solve.

    Attributes:
        damping: Damping λ actually used, shape (B,).
        retried: Whether the sample needed the float64 or extra-damping fallback, shape (B,).
        failed: Whether no factorisation succeeded (the solution is zero there), shape (B,).

    Example:
        The singular second matrix factorises once a little damping is added:

        >>> import torch
        >>> from lightning_energy.linalg import damped_cholesky_solve
        >>> a = torch.stack([torch.eye(2), torch.diag(torch.tensor([1.0, 0.0]))]).double()
        >>> z, info = damped_cholesky_solve(a, torch.ones(2, 2, dtype=torch.float64), 0.0)
        >>> info.retried.tolist(), info.failed.tolist(), (info.damping > 0).tolist()
        ([False, True], [False, False], [False, True])
    """

    damping: Tensor
    retried: Tensor
    failed: Tensor


class DampedSystem(Protocol):
    """A batch of symmetric matrices A_b in some storage, solvable as (A_b + λ_b I) z = rhs."""

    def try_solve(self: System, rhs: Tensor, damping: Tensor) -> tuple[Tensor, Tensor]:
        """Solutions z (B, n) (zero where it failed) and a factorisation success mask (B,)."""
        ...

    def matvec(self: System, z: Tensor) -> Tensor:
        """Products A z, (B, n) → (B, n)."""
        ...

    def select(self: System, index: Tensor) -> System:
        """The samples ``index`` (K,) in float64."""
        ...

    def diagonal_scale(self: System) -> Tensor:
        """Mean |diagonal entry| of each matrix (B,)."""
        ...


def accurate(system: DampedSystem, rhs: Tensor, damping: Tensor, z: Tensor) -> Tensor:
    """Per sample (B,): relative residual of (A + λI) z = rhs at most √eps of the dtype."""
    residual = system.matvec(z) + damping[:, None] * z - rhs
    scale = torch.linalg.vector_norm(rhs, dim=-1).clamp_min(torch.finfo(rhs.dtype).tiny)
    return torch.linalg.vector_norm(residual, dim=-1) <= torch.finfo(rhs.dtype).eps ** 0.5 * scale


def solve_with_fallback(
    system: DampedSystem, rhs: Tensor, damping: Tensor | float, max_retries: int = 8
) -> tuple[Tensor, LinearSolveInfo]:
    """Solve (A + λI) z = rhs for a batch with the fallback of the module docstring.

    Args:
        system: The matrices A (B of them, n × n).
        rhs: Right-hand sides, shape (B, n).
        damping: λ ≥ 0, a float or shape (B,).
        max_retries: Damping increases tried after the float64 retry.

    Returns:
        The solutions (B, n) in ``rhs``'s dtype and a :class:`LinearSolveInfo`.
    """
    batch = rhs.shape[0]
    lam = torch.as_tensor(damping, dtype=rhs.dtype, device=rhs.device).expand(batch).clone()
    z, ok = system.try_solve(rhs, lam)
    ok = ok & accurate(system, rhs, lam, z)
    retried = ~ok
    if bool(ok.all()):
        return z, LinearSolveInfo(lam, retried, ~ok)
    idx = (~ok).nonzero().squeeze(-1)
    sub, sub_rhs, sub_lam = system.select(idx), rhs[idx].double(), lam[idx].double()
    floor = 1e-10 * (1 + sub.diagonal_scale())
    sub_z, sub_ok = sub.try_solve(sub_rhs, sub_lam)
    for _ in range(max_retries):
        if bool(sub_ok.all()):
            break
        sub_lam = torch.where(sub_ok, sub_lam, torch.maximum(10 * sub_lam, floor))
        new_z, new_ok = sub.try_solve(sub_rhs, sub_lam)
        sub_z = torch.where(sub_ok[:, None], sub_z, new_z)
        sub_ok = sub_ok | new_ok
    z = z.index_put((idx,), sub_z.to(z.dtype))
    lam = lam.index_put((idx,), sub_lam.to(lam.dtype))
    ok = ok.index_put((idx,), sub_ok)
    return z, LinearSolveInfo(lam, retried, ~ok)
