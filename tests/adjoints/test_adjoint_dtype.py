"""Every adjoint returns the solver's x* and differentiates in the solver's dtype."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import lightning_energy as le


class Uncast(le.Energy):
    """E = ½‖W x − c‖² + ¼‖x‖⁴ with a float32 W used as is: it needs the solve's dtype cast."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3) + 2 * torch.eye(4, 3))

    def forward(self, x: Tensor, inputs: Tensor) -> Tensor:
        fit = torch.einsum("ij,bj->bi", self.weight, x) - inputs
        return 0.5 * (fit**2).sum(-1) + 0.25 * (x**2).sum(-1) ** 2

    def initial_solution(self, inputs: Tensor) -> Tensor:
        return inputs.new_zeros(inputs.shape[0], 3)


def _problem():
    return Uncast(), torch.randn(3, 4, requires_grad=True)  # a float32 caller


@pytest.mark.parametrize("adjoint", [le.UnrolledAdjoint(), le.TruncatedAdjoint(2),
                                     le.ImplicitAdjoint(1e-3),
                                     le.ImplicitAdjoint(1e-3, hessian="cg")],
                         ids=["unrolled", "truncated", "implicit", "implicit-cg"])
def test_value_is_the_solvers_solution_in_the_solve_dtype(adjoint):
    """Faulty variants: the returned value is x* + 2 x_k (not x*), or the solve ignores dtype."""
    energy, c = _problem()
    solver = le.Newton(tol=1e-12, dtype="float64")
    sol = le.argmin(energy, c, solver=solver, adjoint=adjoint)
    reference = le.argmin(energy, c.detach(), solver=solver, adjoint=le.ImplicitAdjoint())
    assert bool(sol.converged.all())  # tol 1e-12 is reachable only in float64
    assert sol.value.dtype == torch.float64
    assert sol.x.dtype == torch.float32
    assert torch.equal(sol.x.detach(), reference.x)
    (g,) = torch.autograd.grad(sol.x.sum(), c)
    assert g.dtype == torch.float32
    assert bool(torch.isfinite(g).all())


def test_truncated_default_is_one_step():
    """Faulty variant: another default number of differentiated steps."""
    assert le.TruncatedAdjoint().steps == 1
    with pytest.raises(ValueError, match="steps"):
        le.TruncatedAdjoint(0)
