"""Part 2: the damped implicit gradient against central finite differences of tight re-solves.

Per sample b, the reference is dL_b/dθ_b = J_bᵀ(x*_b − x_b) with J_b = dx*/dθ from central
differences of argmins re-solved to ‖∇ₓE‖ ≤ 1e-12 from x*; the candidates are the library's
``ImplicitAdjoint`` gradients with the per-sample θ fed as inputs (one batched backward pass).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

import lightning_energy as le
from studies.assumptions.problems import Case, eigenvalues

DAMPINGS: tuple[float | str, ...] = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, "auto")
FD_STEP = 1e-5
"""Central-difference step in θ (log-parameters or weights): truncation error ~1e-10."""


def fd_jacobian(case: Case, step: float = FD_STEP) -> tuple[Tensor, Tensor]:
    """dx*/dθ per sample (B, n, p) and whether every re-solve converged (B,)."""
    columns, ok = [], torch.ones(case.theta.shape[0], dtype=torch.bool)
    for k in range(case.theta.shape[1]):
        shift = torch.zeros_like(case.theta)
        shift[:, k] = step
        plus, minus = case.solve(case.theta + shift), case.solve(case.theta - shift)
        ok &= plus.converged & minus.converged
        columns.append((plus.x - minus.x) / (2 * step))
    return torch.stack(columns, -1), ok


def loss_gradient(jacobian: Tensor, case: Case) -> Tensor:
    """dL_b/dθ_b = J_bᵀ(x*_b − target_b), (B, p)."""
    return torch.einsum("bnp,bn->bp", jacobian, case.x_star - case.target)


def adjoint_gradient(case: Case, adjoint: le.Adjoint, solver: le.Solver | None = None,
                     x0: Tensor | None = None) -> Tensor:
    """The library's per-sample gradient dL_b/dθ_b for ``adjoint`` (B, p).

    Without ``solver`` the solve starts at x* and stops at once, so only the backward rule
    differs between adjoints; with it, the solve starts at ``x0`` (or the energy's start).
    """
    theta = case.theta.clone().requires_grad_(True)
    x0 = case.x_star if solver is None else x0
    layer = le.EnergyLayer(case.energy, solver or case.tight, adjoint, nonconverged="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # truncated solves are the point here
        x = layer(case.make_inputs(theta), x0).x
    return torch.autograd.grad(case.loss(x).sum(), theta)[0]


def compare(candidate: Tensor, reference: Tensor) -> dict[str, Tensor]:
    """Per-sample cosine and relative error ‖g − g_ref‖/‖g_ref‖."""
    dot = (candidate * reference).sum(-1)
    norms = candidate.norm(dim=-1) * reference.norm(dim=-1)
    cosine = torch.where(norms > 0, dot / norms.clamp_min(1e-300), torch.zeros_like(dot))
    rel = (candidate - reference).norm(dim=-1) / reference.norm(dim=-1).clamp_min(1e-300)
    return {"cosine": cosine, "rel_error": rel}


def fidelity(case: Case, hessians: tuple[str, ...]) -> dict[str, object]:
    """Cosine and relative error of every (Hessian, λ) against the reference, per sample."""
    jac, ok = fd_jacobian(case)
    reference = loss_gradient(jac, case)
    mu = eigenvalues(case.energy, case.x_star, case.make_inputs(case.theta))
    valid = ok & case.converged & (mu[:, 0] > 0) & (reference.norm(dim=-1) > 0)
    out: dict[str, object] = {"mu_min": mu[:, 0], "mu_max": mu[:, -1], "valid": valid,
                              "reference": reference, "jacobian": jac}
    for hessian in hessians:
        for damping in DAMPINGS:
            grad = adjoint_gradient(case, le.ImplicitAdjoint(damping, hessian=hessian))
            out[f"{hessian}/{damping}"] = compare(grad, reference)
    return out
