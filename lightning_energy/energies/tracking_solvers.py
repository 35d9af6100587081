"""Solver and adjoint that exploit the banded Hessian of :class:`TrackFusionEnergy`.

The fusion energy's four coordinates decouple, and each one's Hessian and IRLS matrix is a
symmetric pentadiagonal T×T matrix. :class:`BandedIRLS` (forward) and
:class:`BandedImplicitAdjoint` (backward) therefore solve 4·B small banded systems per step:
dense batched Cholesky for training windows (T < ``dense_below``, differentiable, so
``UnrolledAdjoint`` works through it), LAPACK's banded Cholesky (``scipy.linalg.solveh_banded``,
O(T) time and memory) for whole sequences of thousands of frames. Both talk to the energy only
through :meth:`~TrackFusionEnergy.normal_bands` and :meth:`~TrackFusionEnergy.hessian_bands`.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import solveh_banded
from torch import Tensor

from lightning_energy.adjoints.implicit import ImplicitAdjoint
from lightning_energy.adjoints.linear import damped_cholesky_solve
from lightning_energy.solvers.base import Solver, SolverState
from lightning_energy.solvers.problem import Problem


def _dense_from_bands(bands: Tensor) -> Tensor:
    """Symmetric matrices (..., T, T) from bands (..., 3, T)."""
    t = bands.shape[-1]
    out = torch.diag_embed(bands[..., 0, :])
    for j in (1, 2):
        if t > j:
            off = torch.diag_embed(bands[..., j, : t - j], offset=j)
            out = out + off + off.transpose(-1, -2)
    return out


def solve_bands(bands: Tensor, rhs: Tensor, dense_below: int = 256) -> Tensor:
    """Solve the symmetric positive-definite banded systems (..., 3, T) z = rhs (..., T).

    Dense batched Cholesky (differentiable) when T < ``dense_below``; otherwise LAPACK's banded
    Cholesky (``scipy.linalg.solveh_banded``, O(T) per system, on CPU, no autograd).
    """
    t = bands.shape[-1]
    if t < dense_below:
        factor = torch.linalg.cholesky(_dense_from_bands(bands))
        return torch.cholesky_solve(rhs.unsqueeze(-1), factor).squeeze(-1)
    flat_bands = bands.detach().reshape(-1, 3, t).double().cpu().numpy()
    flat_rhs = rhs.detach().reshape(-1, t).double().cpu().numpy()
    out = np.empty_like(flat_rhs)
    for i in range(flat_rhs.shape[0]):
        upper = np.zeros((3, t))
        upper[2] = flat_bands[i, 0]
        upper[1, 1:] = flat_bands[i, 1, :-1]
        upper[0, 2:] = flat_bands[i, 2, :-2]
        out[i] = solveh_banded(upper, flat_rhs[i], check_finite=False)
    return torch.from_numpy(out).to(rhs).reshape(rhs.shape)


def band_matvec(bands: Tensor, z: Tensor) -> Tensor:
    """Products of symmetric banded matrices (..., 3, T) with vectors z (..., T)."""
    d0, d1, d2 = bands.unbind(-2)
    out = d0 * z
    out = out + torch.cat([d1[..., :-1] * z[..., 1:], torch.zeros_like(z[..., :1])], -1)
    out = out + torch.cat([torch.zeros_like(z[..., :1]), d1[..., :-1] * z[..., :-1]], -1)
    if z.shape[-1] > 2:
        zero = torch.zeros_like(z[..., :2])
        out = out + torch.cat([d2[..., :-2] * z[..., 2:], zero], -1)
        out = out + torch.cat([zero, d2[..., :-2] * z[..., :-2]], -1)
    return out


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

    @staticmethod
    def _evaluate(problem: Problem, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,), gradients (B, n) and the IRLS system (B, 4, 4, T) at flat ``x``."""
        if not hasattr(problem.energy, "normal_bands"):
            raise TypeError(f"BandedIRLS needs a TrackFusionEnergy (normal_bands), got "
                            f"{type(problem.energy).__name__}.")
        bands, rhs = problem._call_method("normal_bands", x, problem.inputs)
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
        bands, rhs = problem._call_method("normal_bands", x, problem.inputs)
        z = solve_bands(bands, rhs, self.dense_below)  # (B, 4, T)
        return z.permute(0, 2, 1).reshape(x.shape)


class BandedImplicitAdjoint(ImplicitAdjoint):
    """The trust-region implicit adjoint with the exact Hessian assembled as bands.

    For :class:`TrackFusionEnergy` the Hessian is four decoupled pentadiagonal T×T blocks, so
    the backward solve (H + λI) v = dL/dx* costs one assembly (:meth:`TrackFusionEnergy.
    hessian_bands`) and 4·B small Cholesky factorisations, instead of n = 4T Hessian-vector
    products (``hessian="exact"``) or a CG loop (``"cg"``). Same rule, same damping semantics
    and fallback (:func:`~lightning_energy.adjoints.linear.damped_cholesky_solve`: retry in
    float64, then more damping, per block) as :class:`~lightning_energy.ImplicitAdjoint`; for
    T ≥ ``dense_below`` the blocks are solved banded (a failed factorisation is retried with
    tenfold damping). ``hessian="gauss_newton"``/``"cg"`` defer to the parent class.

    Args:
        damping: λ ≥ 0 (``"auto"`` is not supported here: it needs eigenvalues).
        hessian: ``"exact"`` (banded), ``"gauss_newton"`` or ``"cg"``.
        dense_below: Block length below which dense batched Cholesky is used.
    """

    def __init__(self, damping: float = 1e-2, hessian: str = "exact",
                 dense_below: int = 256) -> None:
        if damping == "auto":
            raise ValueError("Expected a float `damping` for BandedImplicitAdjoint, got 'auto'.")
        super().__init__(damping=damping, hessian=hessian)
        self.dense_below = dense_below

    def damped_solve(self, problem: Problem, x: Tensor, rhs: Tensor,
                     hessian: Tensor | None = None) -> tuple[Tensor, dict]:
        """Solve (H + λI) v = rhs at flat ``x`` (B, n) with H's bands (``hessian`` is unused)."""
        if self.hessian != "exact" or not hasattr(problem.energy, "hessian_bands"):
            return super().damped_solve(problem, x, rhs, hessian)
        bands = problem._call_method("hessian_bands", x, problem.inputs)  # (B, 4, 3, T)
        b, _, _, t = bands.shape
        flat_rhs = rhs.reshape(b, t, 4).permute(0, 2, 1).reshape(b * 4, t)
        flat_bands = bands.reshape(b * 4, 3, t)
        if t < self.dense_below:
            v, info = damped_cholesky_solve(_dense_from_bands(flat_bands), flat_rhs,
                                            float(self.damping))
            stats = {"damping": info.damping.mean(), "fallbacks": info.retried.sum(),
                     "failed": info.failed.sum()}
        else:
            v, stats = _banded_damped(flat_bands, flat_rhs, float(self.damping))
        return v.reshape(b, 4, t).permute(0, 2, 1).reshape(rhs.shape), stats


def _banded_damped(bands: Tensor, rhs: Tensor, damping: float) -> tuple[Tensor, dict]:
    """(A + λI) z = rhs for banded A (N, 3, T), raising λ tenfold while a factorisation fails."""
    scale = float(bands[:, 0].abs().mean()) + 1e-12
    lam, fallbacks = damping, 0
    for _ in range(8):
        shifted = torch.cat([bands[:, :1] + lam, bands[:, 1:]], 1)
        try:
            z = solve_bands(shifted, rhs, dense_below=0)
            break
        except np.linalg.LinAlgError:
            lam, fallbacks = max(10 * lam, 1e-8 * scale), fallbacks + 1
    else:
        z = torch.zeros_like(rhs)
    return z, {"damping": torch.tensor(lam), "fallbacks": torch.tensor(fallbacks),
               "failed": torch.tensor(int(fallbacks == 8))}
