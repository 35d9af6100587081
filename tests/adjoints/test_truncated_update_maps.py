"""Every solver's update map, as the truncated adjoint differentiates it, in closed form.

On the quadratic energy E = ½ xᵀAx − (b + c)ᵀx a step of any update map from x* is affine in c,
so k differentiated steps from the (detached) solution have a closed-form Jacobian dx/dc:
gradient descent x ← x − ∇E/μ gives Σ_{i<k} (I − A/μ)^i / μ, a damped Newton step
x ← x − (A + μI)⁻¹∇E gives Σ_{i<k} (I − (A + μI)⁻¹A)^i (A + μI)⁻¹, with μ each sample's final
damping.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import lightning_energy as le
from lightning_energy.solvers.problem import Problem


def _closed_form(a: Tensor, step: Tensor, steps: int) -> Tensor:
    """Σ_{i<k} (I − step·A)^i · step for one sample's step matrix (n, n)."""
    eye = torch.eye(a.shape[0], dtype=a.dtype)
    total, power = torch.zeros_like(a), eye
    for _ in range(steps):
        total = total + power @ step
        power = power @ (eye - step @ a)
    return total


SOLVERS = {
    "gradient_descent": (lambda: le.GradientDescent(tol=1e-11, max_steps=5000, step_size=0.1,
                                                    dtype="float64"), "descent"),
    "newton_cg": (lambda: le.NewtonCG(tol=1e-11, cg_rtol=1e-14, initial_damping=0.3,
                                      dtype="float64"), "newton"),
    "multistart": (lambda: le.MultiStart(le.GradientDescent(tol=1e-11, max_steps=5000,
                                                            step_size=0.1, dtype="float64"),
                                         starts=2, scale=0.1), "descent"),
}


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("name", list(SOLVERS))
def test_truncated_gradient_is_k_steps_of_the_solvers_update_map(name: str, steps: int) -> None:
    """Faulty variants: an update map with a sign, scale or damping changed, one that does not
    delegate to the wrapped solver's, or one that skips the curvature."""
    make, kind = SOLVERS[name]
    energy = le.QuadraticEnergy(4, seed=2).double()
    c = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    solution = le.argmin(energy, c, solver=make(), adjoint=le.TruncatedAdjoint(steps))
    assert bool(solution.converged.all())
    torch.testing.assert_close(solution.x, energy.closed_form(c).detach(), atol=1e-9, rtol=0)
    w = torch.randn(3, 4, dtype=torch.float64)
    (grad,) = torch.autograd.grad((solution.x * w).sum(), c)
    a = energy.matrix().detach()
    eye = torch.eye(4, dtype=torch.float64)
    for i in range(3):
        mu = solution.damping[i]
        step = eye / mu if kind == "descent" else torch.linalg.inv(a + mu * eye)
        jac = _closed_form(a, step, steps)  # dx/dc (n, n)
        torch.testing.assert_close(grad[i], jac.T @ w[i], rtol=1e-8, atol=1e-10)


def test_update_maps_fix_the_minimiser() -> None:
    """Faulty variant: an update map that moves x* (a gradient step of the wrong sign is caught
    above; this catches an offset independent of the gradient)."""
    energy = le.QuadraticEnergy(4, seed=3).double()
    c = torch.randn(2, 4, dtype=torch.float64)
    x_star = energy.closed_form(c)
    problem = Problem(energy, c, (4,), torch.float64, detach=True)
    damping = torch.full((2,), 0.5, dtype=torch.float64)
    for make, _ in SOLVERS.values():
        torch.testing.assert_close(make().update(problem, x_star, damping), x_star,
                                   atol=1e-10, rtol=0)


def test_newton_cg_update_differentiates_through_the_curvature_as_the_dense_newton_update():
    """Faulty variants: the Hessian-vector products of the update map built without a graph,
    or on a detached x, so that two unrolled steps lose dH/dx and dH/dθ (invisible on a
    quadratic, whose Hessian is constant)."""
    from tests.helpers import CoupledLogCosh

    energy = CoupledLogCosh(3, 5, seed=4).double()
    c = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    x_star = le.argmin(energy, c.detach(), solver=le.Newton(tol=1e-12, dtype="float64")).x
    # A point off the minimiser, so that ∇E ≠ 0 and dH/dx enters the second step's derivative.
    x = (x_star + 0.3).detach()
    damping = torch.full((2,), 0.7, dtype=torch.float64)
    live = Problem(energy, c, (3,), torch.float64, detach=False)
    grads = []
    for solver in (le.NewtonCG(cg_rtol=1e-15, cg_max_iter=50), le.Newton()):
        out = solver.update(live, solver.update(live, x, damping), damping)
        grads.append(torch.autograd.grad(out.sum(), [c, energy.weight]))
    for cg, dense in zip(*grads, strict=True):
        torch.testing.assert_close(cg, dense, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("options", [{"cg_max_iter": 1}, {"cg_rtol": 0.9}])
def test_newton_cg_update_map_honours_the_inner_cg_options(options: dict) -> None:
    """Faulty variants: the update map's CG run with the default iteration cap or tolerance
    instead of the solver's. One CG iteration from 0 gives α·(−∇E) with
    α = ‖∇E‖² / ∇Eᵀ(A + μI)∇E; a tolerance of 0.9 stops there too."""
    energy = le.QuadraticEnergy(3, seed=5).double()
    c = torch.randn(2, 3, dtype=torch.float64)
    problem = Problem(energy, c, (3,), torch.float64, detach=True)
    x = torch.zeros(2, 3, dtype=torch.float64)
    damping = torch.full((2,), 0.5, dtype=torch.float64)
    grad = problem.gradient(x)
    m = energy.matrix().detach() + 0.5 * torch.eye(3, dtype=torch.float64)
    alpha = (grad * grad).sum(-1) / torch.einsum("bi,ij,bj->b", grad, m, grad)
    got = le.NewtonCG(**options).update(problem, x, damping)
    torch.testing.assert_close(got, x - alpha[:, None] * grad, rtol=1e-12, atol=1e-12)
