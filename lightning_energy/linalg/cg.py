"""Batched conjugate gradients on a matrix-free symmetric operator, each sample stopping alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class CGInfo:
    """Per-sample record of a batched conjugate-gradient solve.

    Attributes:
        iterations: CG iterations per sample, shape (B,).
        residual_norm: Final ‖rhs − A z‖ per sample, shape (B,).
        negative_curvature: A search direction with pᵀAp ≤ 0 was met (A is not positive
            definite); the iterate before it is returned, shape (B,).

    Example:
        >>> import torch
        >>> from lightning_energy.linalg import conjugate_gradient
        >>> z, info = conjugate_gradient(lambda v: -v, torch.ones(2, 3, dtype=torch.float64))
        >>> info.negative_curvature.tolist(), info.iterations.tolist()
        ([True, True], [0, 0])
    """

    iterations: Tensor
    residual_norm: Tensor
    negative_curvature: Tensor


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    rhs: Tensor,
    max_iter: int | None = None,
    rtol: float = 1e-10,
) -> tuple[Tensor, CGInfo]:
    """Solve A z = rhs for a batch of symmetric operators given only ``matvec`` (B, n) → (B, n).

    Each sample stops on its own (relative residual ≤ ``rtol`` or negative curvature); one
    ``matvec`` per iteration serves the whole batch.

    Args:
        matvec: Batched product z ↦ A z.
        rhs: Right-hand sides, shape (B, n).
        max_iter: Iteration cap (default n).
        rtol: Relative residual tolerance.

    Returns:
        Solutions (B, n) and a :class:`CGInfo`.

    Example:
        >>> import torch
        >>> a = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
        >>> rhs = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
        >>> z, info = conjugate_gradient(lambda v: v @ a, rhs)  # a is symmetric
        >>> torch.allclose(z @ a, rhs), info.iterations.tolist()
        (True, [2])
    """
    max_iter = rhs.shape[1] if max_iter is None else max_iter
    z = torch.zeros_like(rhs)
    r, p = rhs, rhs
    rs = (r * r).sum(-1)
    target = rtol * rs.sqrt()
    active = rs.sqrt() > target
    negative = torch.zeros_like(active)
    iterations = torch.zeros(rhs.shape[0], dtype=torch.long, device=rhs.device)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        ap = matvec(p)
        pap = (p * ap).sum(-1)
        bad = active & ~(pap > 0)
        negative, active = negative | bad, active & ~bad
        alpha = torch.where(active, rs / torch.where(active, pap, 1), 0)
        z, r = z + alpha[:, None] * p, r - alpha[:, None] * ap
        rs_new = (r * r).sum(-1)
        iterations = iterations + active
        active = active & (rs_new.sqrt() > target)
        beta = torch.where(active, rs_new / torch.where(rs > 0, rs, 1), 0)
        p, rs = r + beta[:, None] * p, rs_new
    return z, CGInfo(iterations, rs.sqrt(), negative)
