"""The non-converged policies (``mask``, ``warn``, ``raise``) hold for every adjoint.

Each case solves a batch of two problems whose first converges and whose second does not (its
step budget runs out, or its energy is not finite), with per-sample differentiable inputs and
energy parameters. ``mask``: the second sample's gradient is exactly zero, nothing of it reaches
the energy parameters, and it is counted in ``diagnostics["masked"]``. ``warn``: its gradient is
kept and a ``RuntimeWarning`` names it. ``raise``: :class:`SolverError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
import torch
from torch import Tensor

import lightning_energy as le
from lightning_energy.energies.tracking import TrackFusionEnergy, fusion_inputs
from lightning_energy.linalg import Banded, ConjugateGradient
from lightning_energy.solvers import BandedIRLS
from tests.helpers import DoubleWell


class NaNWell(DoubleWell):
    """The double well, whose energy is NaN where an input is below −1 (a solve gone bad)."""

    def forward(self, x: Tensor, inputs: Tensor) -> Tensor:
        return super().forward(x, inputs) + 0 * torch.log(inputs + 1).sum(-1)


@dataclass
class Case:
    """A batch of two problems: sample 0 converges, sample 1 does not."""

    energy: le.Energy
    solver: le.Solver
    inputs: Any
    x0: Tensor | None
    per_sample: Tensor  # the input tensor (leading dim 2) whose gradient is checked
    first: Callable[[], tuple[Any, Tensor | None]]  # inputs and x0 of sample 0 alone


def double_well(max_steps: int = 4, nonfinite: bool = False) -> Case:
    """Newton from 1.05 converges in 3 steps; from 30 it needs about 10, or E is NaN."""
    energy = (NaNWell() if nonfinite else DoubleWell()).double()
    value = [[0.1], [-2.0 if nonfinite else 0.1]]
    inputs = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    x0 = torch.tensor([[1.05], [1.05 if nonfinite else 30.0]], dtype=torch.float64)
    return Case(energy, le.Newton(max_steps=max_steps), inputs, x0, inputs,
                lambda: (inputs[:1], x0[:1]))


def tracking() -> Case:
    """Two windows of 3 trackers: one nearly agreeing (converges), one noisy (3 steps short)."""
    gen = torch.Generator().manual_seed(0)
    boxes = torch.tensor([50.0, 50.0, 20.0, 20.0], dtype=torch.float64).repeat(2, 8, 3, 1)
    noise = torch.randn(2, 8, 3, 4, generator=gen, dtype=torch.float64)
    boxes = boxes + noise * torch.tensor([0.3, 6.0], dtype=torch.float64)[:, None, None, None]
    valid, frames = torch.ones(2, 8, 3, dtype=torch.bool), torch.ones(2, 8, dtype=torch.bool)
    inputs, _ = fusion_inputs(boxes, valid, frames)
    logit = torch.zeros(2, 8, 3, dtype=torch.float64, requires_grad=True)
    inputs = replace(inputs, logit=logit)

    def first() -> tuple[Any, Tensor | None]:
        alone, _ = fusion_inputs(boxes[:1], valid[:1], frames[:1])
        return replace(alone, logit=logit[:1]), None

    return Case(TrackFusionEnergy(3).double(), BandedIRLS(max_steps=3, tol=1e-8), inputs, None,
                logit, first)


CASES: dict[str, tuple[Callable[[], Case], Callable[[], le.Adjoint]]] = {
    "implicit-cholesky": (double_well, lambda: le.ImplicitAdjoint(1e-2)),
    "implicit-cg": (double_well,
                    lambda: le.ImplicitAdjoint(1e-2, linear_solver=ConjugateGradient())),
    "implicit-banded": (tracking, lambda: le.ImplicitAdjoint(1e-2, linear_solver=Banded())),
    "unrolled": (double_well, le.UnrolledAdjoint),
    "unrolled-banded": (tracking, le.UnrolledAdjoint),
    "truncated": (double_well, lambda: le.TruncatedAdjoint(steps=2)),
}
ADJOINTS = pytest.mark.parametrize("name", list(CASES))


def _loss(x: Tensor) -> Tensor:
    weights = torch.linspace(0.5, 1.5, x[0].numel(), dtype=x.dtype).reshape(x.shape[1:])
    return (x * weights).sum()


def _parameter_gradients(energy: le.Energy, loss: Tensor, extra: Tensor) -> list[Tensor]:
    params = [p for p in energy.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [*params, extra], allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=False)]


def _setup(name: str, nonfinite: bool = False) -> tuple[Case, Callable[[str], le.EnergyLayer]]:
    make_case, make_adjoint = CASES[name]
    case = make_case(nonfinite=True) if nonfinite else make_case()

    def layer(policy: str) -> le.EnergyLayer:
        return le.EnergyLayer(case.energy, case.solver, make_adjoint(), nonconverged=policy)

    return case, layer


@ADJOINTS
def test_mask_gives_nonconverged_samples_exactly_zero_gradient(name):
    """Faulty variant: an adjoint ignores `mask_nonconverged` (e.g. unrolled never masks)."""
    case, layer = _setup(name)
    sol = layer("mask")(case.inputs, case.x0)
    assert sol.converged.tolist() == [True, False]
    assert int(sol.diagnostics["masked"]) == 1
    loss = _loss(sol.x)
    (grad,) = torch.autograd.grad(loss, case.per_sample, retain_graph=True)
    assert bool(torch.isfinite(grad).all())
    assert bool((grad[1] == 0).all())
    assert float(grad[0].abs().max()) > 0
    # Nothing of sample 1 reaches θ: the batch's θ gradient is sample 0's alone.
    batch = _parameter_gradients(case.energy, loss, case.per_sample)
    inputs, x0 = case.first()
    alone = _parameter_gradients(case.energy, _loss(layer("mask")(inputs, x0).x),
                                 case.per_sample)
    assert any(float(g.abs().max()) > 0 for g in alone)
    for got, want in zip(batch, alone, strict=True):
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-12)


@ADJOINTS
def test_warn_keeps_the_gradient_and_warns(name):
    """Faulty variant: `warn` masks like `mask` (or stays silent)."""
    case, layer = _setup(name)
    with pytest.warns(RuntimeWarning, match="1 of 2 solves did not converge"):
        sol = layer("warn")(case.inputs, case.x0)
    assert int(sol.diagnostics["masked"]) == 0
    (grad,) = torch.autograd.grad(_loss(sol.x), case.per_sample)
    assert float(grad[1].abs().max()) > 0


@ADJOINTS
def test_raise_raises_a_solver_error(name):
    """Faulty variant: `raise` only warns, or returns the unconverged solution."""
    case, layer = _setup(name)
    with pytest.raises(le.SolverError, match="1 of 2 solves did not converge"):
        layer("raise")(case.inputs, case.x0)


@pytest.mark.parametrize("name", [n for n in CASES if "banded" not in n])
def test_mask_keeps_a_nonfinite_sample_out_of_every_gradient(name):
    """Faulty variant: `mask` keys on MAX_STEPS, so a NONFINITE sample keeps its gradient."""
    case, layer = _setup(name, nonfinite=True)
    sol = layer("mask")(case.inputs, case.x0)
    assert sol.status.tolist() == [le.SolverStatus.CONVERGED, le.SolverStatus.NONFINITE]
    assert int(sol.diagnostics["masked"]) == 1
    loss = _loss(sol.x)
    (grad,) = torch.autograd.grad(loss, case.per_sample, retain_graph=True)
    assert grad[1].tolist() == [0.0]
    assert float(grad[0].abs().max()) > 0
    for g in _parameter_gradients(case.energy, loss, case.per_sample):
        assert bool(torch.isfinite(g).all())


@ADJOINTS
def test_non_finite_inputs_are_refused(name):
    """Faulty variant: NaN inputs reach the solver and come back as a silent NaN solution."""
    case, layer = _setup(name)
    bad = case.per_sample.detach().clone()
    bad.view(-1)[0] = float("nan")
    inputs = bad if isinstance(case.inputs, Tensor) else replace(case.inputs, logit=bad)
    with pytest.raises(le.ShapeError, match="finite"):
        layer("mask")(inputs, case.x0)
