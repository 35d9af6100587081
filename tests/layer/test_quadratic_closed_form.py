"""ImplicitAdjoint(λ) against the closed form −(A + λI)⁻¹ ∂(Ax − b − c)/∂θ on QuadraticEnergy."""

import pytest
import torch

import lightning_energy as le
from lightning_energy.testing import relative_error


def closed_form_grads(energy, c, weights, damping):
    """dL/dθ and dL/dc for L = Σ w·x*, by direct linear algebra (no adjoint code involved)."""
    a = energy.matrix().detach()
    x_star = torch.linalg.solve(a, (energy.b.detach() + c.detach()).T).T
    v = torch.linalg.solve(a + damping * torch.eye(a.shape[0], dtype=a.dtype), weights.T).T
    c_live = c.detach().clone().requires_grad_(True)
    residual = x_star @ energy.matrix().T - energy.b - c_live  # ∇ₓE at x*, live in θ and c
    surrogate = -(v * residual).sum()
    return torch.autograd.grad(surrogate, [energy.factor, energy.b, c_live])


@pytest.mark.parametrize("damping", [0.0, 1e-3, 1e-1])
@pytest.mark.parametrize("hessian", ["exact", "cg"])
def test_implicit_matches_closed_form(damping, hessian):
    energy = le.QuadraticEnergy(5, shift=0.5).double()
    c = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(6, 5, dtype=torch.float64)
    adjoint = le.ImplicitAdjoint(damping=damping, hessian=hessian)
    solution = le.argmin(energy, c, solver=le.Newton(tol=1e-12), adjoint=adjoint)
    assert bool(solution.converged.all())
    got = torch.autograd.grad((solution.x * weights).sum(), [energy.factor, energy.b, c])
    want = closed_form_grads(energy, c, weights, damping)
    for g, w in zip(got, want, strict=True):
        assert relative_error(g, w) < 1e-8


def test_damping_zero_is_the_exact_derivative():
    energy = le.QuadraticEnergy(4).double()
    c = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    solution = le.argmin(energy, c, solver=le.Newton(tol=1e-12), adjoint=le.ImplicitAdjoint(0.0))
    got = torch.autograd.grad(solution.x.pow(2).sum(), [energy.factor, c])
    want = torch.autograd.grad(energy.closed_form(c).pow(2).sum(), [energy.factor, c])
    for g, w in zip(got, want, strict=True):
        assert relative_error(g, w) < 1e-8


def test_damping_biases_gradient_by_about_lambda_over_smallest_eigenvalue():
    energy = le.QuadraticEnergy(4, shift=1.0).double()
    c = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    exact = torch.autograd.grad(energy.closed_form(c).sum(), c)[0]
    lam_min = float(torch.linalg.eigvalsh(energy.matrix().detach())[0])
    for damping in (1e-4, 1e-2):
        solution = le.argmin(energy, c, solver=le.Newton(tol=1e-12),
                             adjoint=le.ImplicitAdjoint(damping))
        damped = torch.autograd.grad(solution.x.sum(), c)[0]
        error = relative_error(damped, exact)
        assert 0 < error <= 2 * damping / lam_min
