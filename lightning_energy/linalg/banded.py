"""Symmetric banded (pentadiagonal) systems: products, solves and damped solves.

Bands are stored lower-diagonal-wise as (..., 3, T): row 0 the diagonal, row 1 the first
sub-diagonal (entry t couples t and t + 1), row 2 the second (t and t + 2). Short systems use
dense batched Cholesky (differentiable); long ones LAPACK's banded Cholesky
(``scipy.linalg.solveh_banded``: O(T) time and memory per system).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import solveh_banded
from torch import Tensor

from lightning_energy.linalg.dense import LinearSolveInfo


def dense_from_bands(bands: Tensor) -> Tensor:
    """Symmetric matrices (..., T, T) from bands (..., 3, T)."""
    t = bands.shape[-1]
    out = torch.diag_embed(bands[..., 0, :])
    for j in (1, 2):
        if t > j:
            off = torch.diag_embed(bands[..., j, : t - j], offset=j)
            out = out + off + off.transpose(-1, -2)
    return out


def _upper(bands: np.ndarray, damping: float = 0.0) -> np.ndarray:
    """LAPACK upper banded storage (3, T) of one system's bands (3, T), λ added on the diagonal."""
    t = bands.shape[-1]
    upper = np.zeros((3, t))
    upper[2] = bands[0] + damping
    upper[1, 1:] = bands[1, :-1]
    upper[0, 2:] = bands[2, :-2]
    return upper


def solve_bands(bands: Tensor, rhs: Tensor, dense_below: int = 256) -> Tensor:
    """Solve the symmetric positive-definite banded systems (..., 3, T) z = rhs (..., T).

    Dense batched Cholesky (differentiable) when T < ``dense_below``; otherwise LAPACK's banded
    Cholesky (``scipy.linalg.solveh_banded``, O(T) per system, on CPU, no autograd). A system
    that is not positive definite, or not finite, raises (``torch.linalg.LinAlgError`` or
    numpy's).

    Example:
        >>> import torch
        >>> bands = torch.tensor([[2.0] * 4, [-1.0] * 4, [0.0] * 4], dtype=torch.float64)
        >>> rhs = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
        >>> solve_bands(bands, rhs).round(decimals=6)
        tensor([1., 1., 1., 1.], dtype=torch.float64)
        >>> torch.allclose(solve_bands(bands, rhs, dense_below=0), solve_bands(bands, rhs))
        True
    """
    t = bands.shape[-1]
    if t < dense_below:
        factor = torch.linalg.cholesky(dense_from_bands(bands))
        return torch.cholesky_solve(rhs.unsqueeze(-1), factor).squeeze(-1)
    flat_bands = bands.detach().reshape(-1, 3, t).double().cpu().numpy()
    flat_rhs = rhs.detach().reshape(-1, t).double().cpu().numpy()
    out = np.empty_like(flat_rhs)
    for i in range(flat_rhs.shape[0]):
        out[i] = _lapack_solve(_upper(flat_bands[i]), flat_rhs[i])
    return torch.from_numpy(out).to(rhs).reshape(rhs.shape)


def _lapack_solve(upper: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """LAPACK's banded Cholesky solve of one system, refusing a non-finite solution.

    LAPACK passes non-finite bands or right-hand sides through as NaN; such a solve raises as a
    failed factorisation does (as on the dense path).
    """
    out = solveh_banded(upper, rhs, check_finite=False)
    if not np.isfinite(out).all():
        raise np.linalg.LinAlgError("banded system: non-finite solution (non-finite input).")
    return out


def band_matvec(bands: Tensor, z: Tensor) -> Tensor:
    """Products of symmetric banded matrices (..., 3, T) with vectors z (..., T).

    Example:
        >>> import torch
        >>> bands = torch.tensor([[2.0] * 4, [-1.0] * 4, [0.0] * 4], dtype=torch.float64)
        >>> band_matvec(bands, torch.ones(4, dtype=torch.float64))  # rows of [−1, 2, −1]
        tensor([1., 0., 0., 1.], dtype=torch.float64)
    """
    d0, d1, d2 = bands.unbind(-2)
    out = d0 * z
    out = out + torch.cat([d1[..., :-1] * z[..., 1:], torch.zeros_like(z[..., :1])], -1)
    out = out + torch.cat([torch.zeros_like(z[..., :1]), d1[..., :-1] * z[..., :-1]], -1)
    if z.shape[-1] > 2:
        zero = torch.zeros_like(z[..., :2])
        out = out + torch.cat([d2[..., :-2] * z[..., 2:], zero], -1)
        out = out + torch.cat([zero, d2[..., :-2] * z[..., :-2]], -1)
    return out


def banded_damped_solve(bands: Tensor, rhs: Tensor, damping: float | Tensor,
                        max_retries: int = 8) -> tuple[Tensor, LinearSolveInfo]:
    """(A + λI) z = rhs for banded A (N, 3, T) by LAPACK, each system with its own fallback.

    As :func:`~lightning_energy.linalg.dense.damped_cholesky_solve`: a system whose
    factorisation fails is retried with λ ← max(10 λ, 1e-10·(1 + mean |diag A|)) up to
    ``max_retries`` times; one that never factorises (a non-finite one never does) gets a zero
    solution and is flagged. ``damping`` is a float or one λ per system (N,).

    Example:
        The second system, −I, never factorises: its solution is zero and it is flagged.

        >>> import torch
        >>> laplacian = torch.tensor([[2.0] * 3, [-1.0] * 3, [0.0] * 3], dtype=torch.float64)
        >>> bands = torch.stack([laplacian, torch.tensor([[-1.0] * 3, [0.0] * 3, [0.0] * 3])])
        >>> z, info = banded_damped_solve(bands, torch.ones(2, 3, dtype=torch.float64), 0.0)
        >>> z[1].tolist(), info.retried.tolist(), info.failed.tolist()
        ([0.0, 0.0, 0.0], [False, True], [False, True])
    """
    flat_bands = bands.detach().double().cpu().numpy()
    flat_rhs = rhs.detach().double().cpu().numpy()
    out = np.zeros_like(flat_rhs)
    lam = np.broadcast_to(torch.as_tensor(damping, dtype=torch.float64).cpu().numpy(),
                          (len(flat_rhs),)).copy()
    retried = np.zeros(len(flat_rhs), dtype=bool)
    failed = np.zeros(len(flat_rhs), dtype=bool)
    for i in range(len(flat_rhs)):
        floor = 1e-10 * (1 + np.abs(flat_bands[i, 0]).mean())
        for attempt in range(max_retries + 1):
            try:
                out[i] = _lapack_solve(_upper(flat_bands[i], lam[i]), flat_rhs[i])
                break
            except np.linalg.LinAlgError:
                retried[i] = True
                if attempt == max_retries:
                    failed[i] = True
                else:
                    lam[i] = max(10 * lam[i], floor)
    info = LinearSolveInfo(torch.from_numpy(lam).to(bands), torch.from_numpy(retried),
                           torch.from_numpy(failed))
    return torch.from_numpy(out).to(rhs), info
