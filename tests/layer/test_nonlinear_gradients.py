"""λ → 0 implicit gradients against central finite differences, parametrised over solvers."""

import pytest
import torch

import lightning_energy as le
from lightning_energy.testing import check_energy, relative_error
from tests.helpers import CoupledLogCosh, RobustLineFit, line_data


def kernel_density():
    gen = torch.Generator().manual_seed(1)
    points = torch.cat([0.3 * torch.randn(4, 12, generator=gen, dtype=torch.float64) + 1.0,
                        4 * torch.rand(4, 4, generator=gen, dtype=torch.float64) - 2], dim=1)
    weights = torch.rand(4, 16, generator=gen, dtype=torch.float64) + 0.5
    return le.KernelDensityEnergy(0.7), (points, weights)


def huber_line():
    return RobustLineFit(15), line_data(4, 15)


def coupled():
    return CoupledLogCosh(5, 7), torch.randn(4, 7, dtype=torch.float64)


GENERAL = [lambda: le.Newton(tol=1e-12, max_steps=100),
           lambda: le.NewtonCG(tol=1e-12, max_steps=100, cg_rtol=1e-14),
           lambda: le.MultiStart(le.Newton(tol=1e-12), starts=3, scale=0.1)]
LEAST_SQUARES = [lambda: le.LevenbergMarquardt(tol=1e-12, max_steps=200),
                 lambda: le.GaussNewton(tol=1e-12, max_steps=200)]
CASES = ([(p, s) for p in (kernel_density, huber_line, coupled) for s in GENERAL]
         + [(huber_line, s) for s in LEAST_SQUARES])


@pytest.mark.parametrize(("problem", "solver"), CASES)
def test_implicit_matches_finite_differences(problem, solver):
    energy, inputs = problem()
    report = check_energy(energy, inputs, solver=solver(), tol=1e-5)
    assert report.grad_norm < 1e-9
    assert report.param_error < 1e-5
    assert report.input_error < 1e-5


def test_gradient_descent_matches_finite_differences():
    energy, inputs = coupled()
    solver = le.GradientDescent(tol=1e-12, max_steps=4000, step_size=0.1)
    report = check_energy(energy, inputs, solver=solver, tol=1e-5)
    assert report.param_error < 1e-5


@pytest.mark.parametrize("problem", [kernel_density, huber_line, coupled])
def test_unrolled_to_convergence_agrees_with_implicit(problem):
    energy, inputs = problem()
    energy = energy.double()
    solver = le.Newton(tol=1e-12, max_steps=100)
    params = [p for p in energy.parameters() if p.requires_grad]
    grads = []
    for adjoint in (le.ImplicitAdjoint(0.0), le.UnrolledAdjoint()):
        x = le.argmin(energy, inputs, solver=solver, adjoint=adjoint).x
        grads.append(torch.autograd.grad(x.pow(2).sum(), params))
    for g_implicit, g_unrolled in zip(*grads, strict=True):
        assert relative_error(g_implicit, g_unrolled) < 1e-6


def test_truncated_with_many_steps_approaches_implicit():
    energy, inputs = coupled()
    energy = energy.double()
    solver = le.Newton(tol=1e-12)
    ref = le.argmin(energy, inputs, solver=solver, adjoint=le.ImplicitAdjoint(0.0)).x
    g_ref = torch.autograd.grad(ref.sum(), energy.weight)[0]
    errors = []
    for steps in (1, 3):
        x = le.argmin(energy, inputs, solver=solver, adjoint=le.TruncatedAdjoint(steps)).x
        errors.append(relative_error(torch.autograd.grad(x.sum(), energy.weight)[0], g_ref))
    assert errors[1] < 1e-6 < errors[0] + 1


def test_gauss_newton_hessian_is_exact_for_linear_residuals():
    from tests.helpers import LinearResiduals

    energy = LinearResiduals(4, 9).double()
    c = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)
    grads = []
    for hessian in ("exact", "gauss_newton"):
        adjoint = le.ImplicitAdjoint(0.0, hessian=hessian)
        x = le.argmin(energy, c, solver=le.GaussNewton(tol=1e-12), adjoint=adjoint).x
        grads.append(torch.autograd.grad(x.pow(2).sum(), [energy.a, c]))
    for g_exact, g_gn in zip(*grads, strict=True):
        assert relative_error(g_exact, g_gn) < 1e-9
