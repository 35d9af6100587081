"""Every public option of the inner solvers changes what it says (one step, checked by hand)."""

from __future__ import annotations

import pytest
import torch

import lightning_energy as le
from lightning_energy.solvers.problem import Problem
from tests.helpers import DoubleWell, RobustLineFit, line_data


def well(x: float) -> tuple[Problem, torch.Tensor]:
    """E = (x² − 1)² from x0: ∇E = 4x(x² − 1), ∇²E = 12x² − 4 (x0 = 3: 96 and 104)."""
    problem = Problem(DoubleWell().double(), torch.zeros(1, 1, dtype=torch.float64), (1,))
    return problem, torch.tensor([[x]], dtype=torch.float64)


def test_max_steps_zero_returns_the_start_unconverged():
    """Faulty variant: the loop runs one step more than `max_steps`."""
    problem, x0 = well(3.0)
    sol = le.Newton(max_steps=0).solve(problem, x0)
    assert torch.equal(sol.x, x0)
    assert sol.num_steps.tolist() == [0]
    assert sol.status.tolist() == [le.SolverStatus.MAX_STEPS]
    assert sol.grad_norm.tolist() == [96.0]
    two = le.Newton(max_steps=2).solve(problem, x0)
    assert two.num_steps.tolist() == [2]


@pytest.mark.parametrize("tol", [1e-2, 1e-10])
def test_tol_is_the_gradient_norm_at_which_a_sample_stops(tol):
    """Faulty variant: `tol` compared with the energy change, or with `<` against the norm."""
    problem, x0 = well(3.0)
    sol = le.Newton(tol=tol).solve(problem, x0)
    assert sol.converged.tolist() == [True]
    assert float(sol.grad_norm) <= tol
    one_less = le.Newton(tol=tol, max_steps=int(sol.num_steps) - 1).solve(problem, x0)
    assert float(one_less.grad_norm) > tol  # it stopped at the first step below tol
    at_start = le.Newton(tol=96.0).solve(problem, x0)  # ‖∇E(x0)‖ = 96 exactly
    assert at_start.num_steps.tolist() == [0]
    assert at_start.converged.tolist() == [True]


def test_max_damping_declares_a_sample_stalled():
    """Faulty variant: `max_damping` not handed to the base solver (1e16 always)."""
    problem, x0 = well(3.0)
    sol = le.Newton(max_damping=1e-3).solve(problem, x0)  # μ₀ = 1e-3 · 104 > 1e-3
    assert sol.status.tolist() == [le.SolverStatus.STALLED]
    assert sol.num_steps.tolist() == [0]


@pytest.mark.parametrize("initial", [1e-3, 0.5])
def test_initial_damping_is_relative_to_the_largest_curvature(initial):
    """Faulty variant: μ₀ absolute (not times max |diag H|), or the default whatever given."""
    problem, x0 = well(3.0)
    sol = le.Newton(max_steps=0, initial_damping=initial).solve(problem, x0)
    eps = torch.finfo(torch.float64).eps
    assert float(sol.damping) == pytest.approx(initial * 104.0 + eps, rel=1e-12)


def test_eta_rejects_steps_whose_gain_ratio_is_below_it():
    """Faulty variant: `eta` ignored (every step with a decrease accepted)."""
    problem, x0 = well(0.8)  # the Newton step from 0.8 has a gain ratio between 1e-4 and 0.9
    loose = le.Newton(max_steps=1, eta=1e-4).solve(problem, x0)
    strict = le.Newton(max_steps=1, eta=0.9).solve(problem, x0)
    start = le.Newton(max_steps=0).solve(problem, x0)
    assert float(loose.x) > 1.0
    assert torch.equal(strict.x, x0)
    assert float(strict.damping) == pytest.approx(2 * float(start.damping))  # rejected: μ × 2


def test_gauss_newton_starts_nearly_undamped_and_lm_with_its_initial_damping():
    """Faulty variant: GaussNewton passes its own `initial_damping` on as the LM default."""
    energy, data = RobustLineFit(8).double(), line_data(2, 8)
    problem = Problem(energy, data, (2,))
    x0 = torch.zeros(2, 2, dtype=torch.float64)
    _, _, jtj = problem.gauss_newton(x0)
    scale = jtj.diagonal(dim1=-2, dim2=-1).abs().amax(-1)
    eps = torch.finfo(torch.float64).eps
    gn = le.GaussNewton(max_steps=0).solve(problem, x0)
    lm = le.LevenbergMarquardt(max_steps=0, initial_damping=0.2).solve(problem, x0)
    assert torch.allclose(gn.damping, 1e-10 * scale + eps)
    assert torch.allclose(lm.damping, 0.2 * scale + eps)


def test_gradient_descent_step_size_and_its_growth():
    """Faulty variant: the first step is not x0 − α∇E, or α does not grow by `increase`."""
    problem, x0 = well(3.0)
    sol = le.GradientDescent(max_steps=1, step_size=1e-3).solve(problem, x0)
    assert float(sol.x) == pytest.approx(3.0 - 1e-3 * 96.0)
    assert float(sol.damping) == pytest.approx(1 / (1e-3 * 1.2))  # damping holds 1/α
    faster = le.GradientDescent(max_steps=1, step_size=1e-3, increase=2.0).solve(problem, x0)
    assert float(faster.damping) == pytest.approx(1 / (1e-3 * 2.0))


def test_gradient_descent_shrinks_a_rejected_step_by_decrease():
    """Faulty variant: a rejected step keeps α, or shrinks it by another factor."""
    problem, x0 = well(3.0)
    for decrease in (0.5, 0.1):
        sol = le.GradientDescent(max_steps=1, step_size=1.0, decrease=decrease).solve(problem,
                                                                                     x0)
        assert torch.equal(sol.x, x0)  # x0 − 96 overshoots: rejected
        assert float(sol.damping) == pytest.approx(1 / decrease)


def test_gradient_descent_armijo_constant():
    """Faulty variant: `armijo` ignored (any decrease accepted)."""
    problem, x0 = well(3.0)
    plain = le.GradientDescent(max_steps=1).solve(problem, x0)  # α = 0.01: x = 2.04
    strict = le.GradientDescent(max_steps=1, armijo=0.9).solve(problem, x0)
    assert float(plain.x) == pytest.approx(2.04)
    assert torch.equal(strict.x, x0)


def test_gradient_descent_refuses_bad_step_rules():
    for kwargs in ({"step_size": 0.0}, {"increase": 0.9}, {"decrease": 1.0}, {"decrease": 0.0}):
        with pytest.raises(ValueError, match="step_size"):
            le.GradientDescent(**kwargs)


def _quadratic(n: int = 6) -> tuple[Problem, torch.Tensor]:
    energy = le.QuadraticEnergy(n, shift=0.1).double()
    c = torch.randn(2, n, dtype=torch.float64)
    return Problem(energy, c, (n,)), energy.closed_form(c).detach()


def test_newton_cg_inner_iterations_and_tolerance():
    """Faulty variant: `cg_max_iter` or `cg_rtol` not handed to the inner CG."""
    problem, exact = _quadratic()
    x0 = torch.zeros_like(exact)
    full = le.NewtonCG(max_steps=1, initial_damping=1e-12, cg_rtol=1e-14).solve(problem, x0)
    one = le.NewtonCG(max_steps=1, initial_damping=1e-12, cg_max_iter=1).solve(problem, x0)
    loose = le.NewtonCG(max_steps=1, initial_damping=1e-12, cg_rtol=0.3).solve(problem, x0)
    assert float((full.x - exact).abs().max()) < 1e-8  # one exact Newton step
    assert float((one.x - exact).abs().max()) > 1e-3
    assert float((loose.x - exact).abs().max()) > 1e-6


@pytest.mark.parametrize("initial", [1e-3, 0.5])
def test_newton_cg_initial_damping_is_relative_to_the_curvature_along_the_gradient(initial):
    """Faulty variant: μ₀ scaled by gᵀg instead of gᵀHg / gᵀg (or not by `initial_damping`)."""
    problem, exact = _quadratic()
    x0 = torch.zeros_like(exact)
    grad = problem.gradient(x0)
    curvature = (grad * problem.hvp(x0, grad)).sum(-1) / (grad * grad).sum(-1)
    sol = le.NewtonCG(max_steps=0, initial_damping=initial).solve(problem, x0)
    eps = torch.finfo(torch.float64).eps
    assert torch.allclose(sol.damping, initial * curvature.abs() + eps, rtol=1e-12)


def test_multistart_starts_scale_and_seed():
    """Faulty variant: `scale` or `seed` ignored, or the given x0 not among the starts."""
    x0 = torch.randn(3, 2, dtype=torch.float64)
    points = le.MultiStart(le.Newton(), starts=4, scale=0.5, seed=1).initial_points(x0)
    assert points.shape == (4, 3, 2)
    assert torch.equal(points[0], x0)
    again = le.MultiStart(le.Newton(), starts=4, scale=0.5, seed=1).initial_points(x0)
    wider = le.MultiStart(le.Newton(), starts=4, scale=1.0, seed=1).initial_points(x0)
    other = le.MultiStart(le.Newton(), starts=4, scale=0.5, seed=2).initial_points(x0)
    assert torch.equal(points, again)
    assert torch.allclose(wider[1:] - x0, 2 * (points[1:] - x0))
    assert not torch.allclose(other[1:], points[1:])
    offsets = le.MultiStart(le.Newton(), starts=[[0.0, 1.0], [2.0, 0.0]]).initial_points(x0)
    assert torch.equal(offsets, torch.stack([x0 + torch.tensor([0.0, 1.0], dtype=x0.dtype),
                                             x0 + torch.tensor([2.0, 0.0], dtype=x0.dtype)]))
    with pytest.raises(ValueError, match=r"\(S, 2\)"):
        le.MultiStart(le.Newton(), starts=torch.zeros(2, 3)).initial_points(x0)
    with pytest.raises(ValueError, match="starts"):
        le.MultiStart(le.Newton(), starts=0)


def test_multistart_takes_the_inner_solver_settings():
    """Faulty variant: MultiStart keeps the base defaults instead of the inner solver's."""
    inner = le.Newton(max_steps=7, tol=1e-3, dtype="float64", max_damping=5.0)
    solver = le.MultiStart(inner, starts=2)
    assert (solver.max_steps, solver.tol, solver.dtype, solver.max_damping) == (
        7, 1e-3, torch.float64, 5.0)
    assert solver.curvature_kind == "exact"
    assert le.MultiStart(le.GaussNewton()).requires_least_squares


def test_solver_argument_checks():
    with pytest.raises(ValueError, match="max_steps"):
        le.Newton(max_steps=-1)
    with pytest.raises(ValueError, match="tol"):
        le.Newton(tol=-1e-6)
    assert le.Newton(dtype="float32").dtype == torch.float32
