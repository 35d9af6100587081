"""Part 3: does dx*/dθ·Δθ predict where x* moves after a step, and what do truncated solves do?

The prediction of each adjoint is its own per-sample Jacobian (n backward passes of the
library's rule, θ fed as inputs) applied to Δθ; the actual move is the argmin re-solved tightly
from the old x* (continuation) at θ + Δθ. Whether a cold start (the training solver from the
energy's own start, as in training) lands on the same branch is counted separately.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

import lightning_energy as le
from studies.assumptions.fidelity import adjoint_gradient, compare, loss_gradient
from studies.assumptions.problems import Case


def adjoint_jacobian(case: Case, adjoint: le.Adjoint) -> Tensor:
    """dx*/dθ as the adjoint's backward rule gives it, per sample (B, n, p)."""
    theta = case.theta.clone().requires_grad_(True)
    layer = le.EnergyLayer(case.energy, case.tight, adjoint, nonconverged="warn")
    x = layer(case.make_inputs(theta), case.x_star).x
    rows = [torch.autograd.grad(x[:, i].sum(), theta, retain_graph=True)[0]
            for i in range(x.shape[1])]
    return torch.stack(rows, 1)


def step_drift(case: Case, direction: Tensor, sizes: list[float],
               adjoints: dict[str, le.Adjoint], cold: le.Solver) -> dict[str, object]:
    """Median relative error of each adjoint's predicted Δx* against the re-solved one.

    ``direction`` (B, p) has unit norm per sample; θ moves by size·direction.
    """
    jacobians = {name: adjoint_jacobian(case, adj) for name, adj in adjoints.items()}
    errors: dict[str, list[float]] = {name: [] for name in adjoints}
    jumps, unsettled, moves = [], [], []
    for size in sizes:
        theta = case.theta + size * direction
        actual = case.solve(theta).x - case.x_star
        moved = actual.norm(dim=-1)
        keep = moved > 0
        moves.append(float(moved.median()))
        for name, jac in jacobians.items():
            predicted = size * torch.einsum("bnp,bp->bn", jac, direction)
            rel = (predicted - actual).norm(dim=-1)[keep] / moved[keep]
            errors[name].append(float(rel.median()))
        restart = case.solve(theta, cold, x0=case.energy.initial_solution(case.make_inputs(theta)))
        refined = case.solve(theta, x0=restart.x.reshape(case.x_star.shape))
        elsewhere = (refined.x - case.x_star - actual).norm(dim=-1) > 1e-4
        jumps.append(float(elsewhere.double().mean()))
        # A restart whose refinement did not converge is not evidence of another minimum.
        unsettled.append(float((elsewhere & ~refined.converged).double().mean()))
    return {"sizes": sizes, "median_rel_error": errors, "jump_share": jumps,
            "jump_unconverged_share": unsettled, "median_move": moves}


def newton_budget(kind: str, value: float) -> le.Solver:
    """The toys' truncated solver.

    Newton capped at ``value`` steps (tol 1e-6), or 50 steps to tolerance ``value``.
    """
    if kind == "steps":
        return le.Newton(max_steps=int(value), tol=1e-6, dtype="float64")
    return le.Newton(max_steps=50, tol=value, dtype="float64")


def truncation(case: Case, reference: Tensor, budgets: list[int], tols: list[float],
               damping: float = 1e-2, make_solver: Any = newton_budget) -> dict[str, object]:
    """Gradients from inner solves cut short, against the reference at the converged x*.

    ``make_solver("steps", b)`` caps the solver at b steps, ``make_solver("tol", t)`` loosens
    its tolerance (default :func:`newton_budget`); each starts from the energy's own start. The
    implicit rule is applied at the truncated point; the unrolled one differentiates the
    truncated iterations themselves; both with the case's own loss at the truncated x.
    """
    out: dict[str, dict[str, list[float]]] = {}
    settings = [("steps", b, make_solver("steps", b)) for b in budgets]
    settings += [("tol", t, make_solver("tol", t)) for t in tols]
    for kind, value, solver in settings:
        x0 = case.energy.initial_solution(case.make_inputs(case.theta))
        row = out.setdefault(kind, {"value": [], "implicit": [], "unrolled": [],
                                    "implicit_rel": [], "unrolled_rel": [],
                                    "unconverged": [], "x_error": []})
        with torch.no_grad():
            sol = case.solve(case.theta, solver, x0=x0)
        row["value"].append(value)
        row["unconverged"].append(float((~sol.converged).double().mean()))
        row["x_error"].append(
            float((sol.x.reshape(case.x_star.shape) - case.x_star).norm(dim=-1).median()))
        for name, adj in (("implicit", le.ImplicitAdjoint(damping)),
                          ("unrolled", le.UnrolledAdjoint())):
            scores = compare(adjoint_gradient(case, adj, solver, x0), reference)
            row[name].append(float(scores["cosine"].median()))
            row[f"{name}_rel"].append(float(scores["rel_error"].median()))
    return out


__all__ = ["adjoint_jacobian", "loss_gradient", "newton_budget", "step_drift", "truncation"]
