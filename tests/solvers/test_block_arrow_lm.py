"""Block-arrow Levenberg–Marquardt and the structured implicit adjoint against the dense ones."""

from __future__ import annotations

import pytest
import torch

import lightning_energy as le
from lightning_energy.errors import IncompatibleSolverError
from lightning_energy.linalg import BlockArrow
from lightning_energy.solvers.problem import Problem
from tests.helpers import RobustLineFit, WobblyTrack, line_data

F64 = torch.float64


def track(t: int = 12, shared: int = 2, batch: int = 3) -> tuple[WobblyTrack, torch.Tensor]:
    gen = torch.Generator().manual_seed(t)
    return WobblyTrack(shared).double(), torch.randn(batch, t, 3, generator=gen, dtype=F64)


def solvers() -> tuple[le.Solver, le.Solver]:
    return (le.LevenbergMarquardt(tol=1e-10, max_steps=300),
            le.BlockArrowLevenbergMarquardt(tol=1e-10, max_steps=300))


@pytest.mark.parametrize(("t", "shared"), [(1, 0), (6, 0), (12, 2), (40, 3)])
def test_iterates_equal_dense_levenberg_marquardt(t, shared):
    """Faulty variant: the damping scale taken from the frame blocks only, ignoring the corner."""
    energy, inputs = track(t, shared)
    x0 = energy.initial_solution(inputs)
    problem = Problem(energy, inputs, x0.shape[1:], F64)
    early = [solver.run(problem, x0, max_steps=10) for solver in solvers()]
    assert (early[0].x - early[1].x).abs().max() <= 1e-12
    assert torch.allclose(early[0].damping, early[1].damping, rtol=1e-10, atol=0)


@pytest.mark.parametrize(("t", "shared"), [(6, 0), (12, 2)])
def test_minimum_equals_dense_levenberg_marquardt(t, shared):
    """Near the minimum rounding flips some accept/reject decisions of the two, so the final
    points agree at the solve's accuracy, not to rounding."""
    energy, inputs = track(t, shared)
    x0 = energy.initial_solution(inputs)
    problem = Problem(energy, inputs, x0.shape[1:], F64)
    final = [solver.solve(problem, x0) for solver in solvers()]
    assert bool(final[1].converged.all())
    assert bool(final[0].converged.all())
    assert (final[0].x - final[1].x).abs().max() <= 1e-7


def layer_gradients(adjoint: le.Adjoint, energy: WobblyTrack, inputs: torch.Tensor,
                    solver: le.Solver) -> list[torch.Tensor]:
    inputs = inputs.clone().requires_grad_(True)
    weights = torch.linspace(-1, 1, inputs.shape[1] * 3 + energy.shared_size, dtype=F64)
    x = le.argmin(energy, inputs, solver=solver, adjoint=adjoint).x
    loss = (weights * x).sum() + (x**2).sum()
    params = [p for p in energy.parameters()]
    return list(torch.autograd.grad(loss, [*params, inputs]))


@pytest.mark.parametrize("damping", [0.0, 1e-2])
def test_structured_adjoint_equals_the_dense_one(damping):
    """Faulty variant: the border (shared variables) left out of the Schur complement."""
    energy, inputs = track(8, 2)
    solver = le.BlockArrowLevenbergMarquardt(tol=1e-11, max_steps=200)
    structured = layer_gradients(le.ImplicitAdjoint(damping, linear_solver=BlockArrow()),
                                 energy, inputs, solver)
    dense = layer_gradients(le.ImplicitAdjoint(damping), energy, inputs, solver)
    for got, want in zip(structured, dense, strict=True):
        assert (got - want).abs().max() <= 1e-10 * (1 + want.abs().max())


def test_structured_adjoint_matches_finite_differences():
    """λ = 0 through the block-arrow path against central differences of re-solved argmins."""
    energy, inputs = track(5, 2)
    solver = le.BlockArrowLevenbergMarquardt(tol=1e-12, max_steps=200)
    adjoint = le.ImplicitAdjoint(0.0, linear_solver=BlockArrow())
    grads = layer_gradients(adjoint, energy, inputs, solver)
    params = [*energy.parameters()]
    gen = torch.Generator().manual_seed(3)
    directions = [torch.randn(p.shape, generator=gen, dtype=F64) for p in params]
    direction_in = torch.randn(inputs.shape, generator=gen, dtype=F64)
    analytic = sum((g * d).sum() for g, d in zip(grads, [*directions, direction_in], strict=True))
    weights = torch.linspace(-1, 1, 5 * 3 + 2, dtype=F64)

    def loss(step: float) -> float:
        with torch.no_grad():
            for p, d in zip(params, directions, strict=True):
                p.add_(step * d)
            x = le.argmin(energy, inputs + step * direction_in, solver=solver,
                          adjoint=adjoint).x
            for p, d in zip(params, directions, strict=True):
                p.sub_(step * d)
        return float((weights * x).sum() + (x**2).sum())

    h = 1e-5
    numeric = (loss(h) - loss(-h)) / (2 * h)
    assert abs(float(analytic) - numeric) <= 1e-6 * (1 + abs(numeric))


def test_unrolled_through_the_structured_steps_agrees_with_implicit():
    """The block-arrow steps are differentiable: unrolled to convergence equals λ = 0 implicit."""
    energy, inputs = track(3, 1, batch=2)
    solver = le.BlockArrowLevenbergMarquardt(tol=1e-12, max_steps=100)
    implicit = layer_gradients(le.ImplicitAdjoint(0.0, linear_solver=BlockArrow()), energy,
                               inputs, solver)
    unrolled = layer_gradients(le.UnrolledAdjoint(), energy, inputs, solver)
    for got, want in zip(unrolled, implicit, strict=True):
        assert (got - want).abs().max() <= 1e-6 * (1 + want.abs().max())


def test_energies_without_the_structure_are_refused_with_a_clear_error():
    line = RobustLineFit(6)
    with pytest.raises(IncompatibleSolverError, match="BlockArrowLevenbergMarquardt needs"):
        le.argmin(line, line_data(2, 6), solver=le.BlockArrowLevenbergMarquardt(),
                  x0=torch.zeros(2, 2))
    with pytest.raises(IncompatibleSolverError, match="hessian_block_arrow"):
        le.EnergyLayer(line, le.LevenbergMarquardt(),
                       le.ImplicitAdjoint(1e-2, linear_solver=BlockArrow()))
    with pytest.raises(ValueError, match="float `damping`"):
        le.ImplicitAdjoint("auto", linear_solver=BlockArrow())


def test_newtons_final_hessian_is_reused_by_the_structured_backward(monkeypatch):
    """Faulty variant: the packed Hessian dropped and rebuilt (3p + s more products)."""
    energy, inputs = track(6, 2)
    solver = le.BlockArrowNewton(tol=1e-11, max_steps=100)
    adjoint = le.ImplicitAdjoint(1e-2, linear_solver=BlockArrow())
    reference = layer_gradients(adjoint, energy, inputs, le.BlockArrowLevenbergMarquardt(
        tol=1e-11, max_steps=200))
    calls = []
    original = type(energy).hessian_block_arrow

    def counted(self, x, inputs):
        calls.append(x.shape)
        return original(self, x, inputs)

    monkeypatch.setattr(type(energy), "hessian_block_arrow", counted)
    inputs_leaf = inputs.clone().requires_grad_(True)
    x = le.argmin(energy, inputs_leaf, solver=solver, adjoint=adjoint).x
    during_solve = len(calls)
    weights = torch.linspace(-1, 1, x.shape[1], dtype=F64)
    loss = (weights * x).sum() + (x**2).sum()
    grads = torch.autograd.grad(loss, [*energy.parameters(), inputs_leaf])
    assert len(calls) == during_solve  # the backward used the solver's own Hessian
    for got, want in zip(grads, reference, strict=True):
        assert (got - want).abs().max() <= 1e-8 * (1 + want.abs().max())


def test_kernel_curvature_reaches_newtons_minimum():
    """Both keep the Cauchy kernel's curvature; each stops at ‖∇E‖ ≤ 1e-10 at the same x*."""
    energy, inputs = track(12, 2)
    x0 = energy.initial_solution(inputs)
    problem = Problem(energy, inputs, x0.shape[1:], F64)
    robust = le.BlockArrowLevenbergMarquardt(tol=1e-10, max_steps=300,
                                             kernel_curvature=True).solve(problem, x0)
    newton = le.BlockArrowNewton(tol=1e-10, max_steps=300).solve(problem, x0)
    assert bool(robust.converged.all())
    assert bool(newton.converged.all())
    assert (robust.x - newton.x).abs().max() <= 1e-7
    # The option reaches the energy (faulty variant: the curvature asked for without it).
    x = x0.reshape(x0.shape[0], -1)
    flags = (True, False)
    kernel, plain = (le.BlockArrowLevenbergMarquardt(kernel_curvature=flag).evaluate(problem, x)[2]
                     for flag in flags)
    wanted = [problem.call("gauss_newton_block_arrow", x, inputs, flag)[2].pack()
              for flag in flags]
    torch.testing.assert_close(kernel, wanted[0])
    torch.testing.assert_close(plain, wanted[1])
    assert (kernel - plain).abs().max() > 1e-3


def test_update_map_equals_the_dense_levenberg_marquardt_update():
    """Faulty variant: the update map handing the solve no problem (the block-arrow solve reads
    the frame and shared sizes from the problem's energy)."""
    energy, inputs = track(6, 2)
    x0 = energy.initial_solution(inputs)
    problem = Problem(energy, inputs, x0.shape[1:], F64)
    x = x0.reshape(x0.shape[0], -1) + 0.1
    damping = torch.full((x.shape[0],), 0.3, dtype=F64)
    dense, block = solvers()
    torch.testing.assert_close(block.update(problem, x, damping),
                               dense.update(problem, x, damping), rtol=1e-12, atol=1e-12)


def test_a_dense_newton_hessian_is_handed_to_the_structured_backward_as_a_dense_one():
    """Faulty variant: the solver's dense Hessian taken for packed block-arrow blocks (the
    unpacking then refuses it)."""
    energy, inputs = track(4, 2)
    adjoint = le.ImplicitAdjoint(1e-2, linear_solver=BlockArrow())
    reference = layer_gradients(adjoint, energy, inputs, le.BlockArrowLevenbergMarquardt(
        tol=1e-11, max_steps=200))
    grads = layer_gradients(adjoint, energy, inputs, le.Newton(tol=1e-11, max_steps=100))
    for got, want in zip(grads, reference, strict=True):
        assert (got - want).abs().max() <= 1e-8 * (1 + want.abs().max())
