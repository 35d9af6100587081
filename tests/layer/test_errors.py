"""Bad input raises a clear error naming the argument, what was expected and what came."""

import pytest
import torch

import lightning_energy as le
from tests.helpers import DoubleWell, RobustLineFit


class WrongShape(le.Energy):
    def forward(self, x, inputs):
        return (x**2).sum(-1, keepdim=True)


def test_wrong_x0_shape():
    layer = le.EnergyLayer(le.QuadraticEnergy(3), le.Newton())
    with pytest.raises(le.ShapeError, match=r"Expected `x0` of shape \(4, 3\).*got \(4, 2\)"):
        layer(torch.randn(4, 3), x0=torch.zeros(4, 2))
    with pytest.raises(le.ShapeError, match=r"Expected `x0` of shape \(4, 3\).*got \(5, 3\)"):
        layer(torch.randn(4, 3), x0=torch.zeros(5, 3))


def test_energy_returning_wrong_shape():
    layer = le.EnergyLayer(WrongShape(), le.Newton())
    with pytest.raises(le.ShapeError, match=r"WrongShape.forward.*shape \(4,\).*got \(4, 1\)"):
        layer(torch.randn(4, 3), x0=torch.zeros(4, 3))


def test_integer_inputs():
    layer = le.EnergyLayer(le.QuadraticEnergy(3), le.Newton())
    with pytest.raises(le.ShapeError, match=r"floating-point.*torch.int64"):
        layer(torch.ones(4, 3, dtype=torch.long))


def test_non_finite_inputs():
    layer = le.EnergyLayer(le.QuadraticEnergy(3), le.Newton())
    bad = torch.randn(4, 3)
    bad[1, 2] = float("nan")
    with pytest.raises(le.ShapeError, match="finite"):
        layer(bad)


def test_least_squares_solver_rejects_plain_energy_at_construction():
    with pytest.raises(le.IncompatibleSolverError, match=r"LevenbergMarquardt needs a "
                       r"LeastSquaresEnergy.*got QuadraticEnergy"):
        le.EnergyLayer(le.QuadraticEnergy(3), le.LevenbergMarquardt())
    with pytest.raises(le.IncompatibleSolverError, match="gauss_newton"):
        le.EnergyLayer(le.QuadraticEnergy(3), le.Newton(),
                       le.ImplicitAdjoint(hessian="gauss_newton"))
    le.EnergyLayer(RobustLineFit(5), le.GaussNewton())  # accepted


def test_bad_configuration_values():
    with pytest.raises(ValueError, match="`damping`"):
        le.ImplicitAdjoint(damping=-1.0)
    with pytest.raises(ValueError, match="`hessian`"):
        le.ImplicitAdjoint(hessian="dense")
    with pytest.raises(ValueError, match="`nonconverged`"):
        le.EnergyLayer(le.QuadraticEnergy(2), le.Newton(), nonconverged="ignore")
    with pytest.raises(ValueError, match="`dtype`"):
        le.Newton(dtype="float16")
    with pytest.raises(ValueError, match="half precision"):
        le.NewtonCG(dtype=torch.bfloat16)


def nonconverged_layer(policy):
    return le.EnergyLayer(DoubleWell(), le.GradientDescent(max_steps=2), nonconverged=policy)


def test_nonconverged_mask_zeroes_gradient_and_counts():
    layer = nonconverged_layer("mask")
    inputs = torch.tensor([[0.0], [0.0]], requires_grad=True)
    x0 = torch.tensor([[1.0], [3.0]])  # sample 0 starts at its minimum, sample 1 far away
    sol = layer(inputs, x0)
    assert sol.converged.tolist() == [True, False]
    assert int(sol.diagnostics["masked"]) == 1
    assert sol.status.tolist() == [le.SolverStatus.CONVERGED, le.SolverStatus.MAX_STEPS]
    (g,) = torch.autograd.grad(sol.x.sum(), inputs)
    assert g[1].item() == 0.0
    assert g[0].item() != 0.0


def test_nonconverged_warn_and_raise():
    inputs = torch.zeros(2, 1)
    x0 = torch.tensor([[1.0], [3.0]])
    with pytest.warns(RuntimeWarning, match="1 of 2 solves did not converge"):
        nonconverged_layer("warn")(inputs, x0)
    with pytest.raises(le.SolverError, match="1 of 2 solves did not converge"):
        nonconverged_layer("raise")(inputs, x0)


def test_missing_initial_solution_is_explained():
    layer = le.EnergyLayer(DoubleWell(), le.Newton())
    with pytest.raises(NotImplementedError, match="pass `x0`"):
        layer(torch.zeros(2, 1))
