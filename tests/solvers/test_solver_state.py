"""SolverState: what every solver's states hold, and merges that refuse mismatched states."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import lightning_energy as le
from lightning_energy.solvers import BandedIRLS
from lightning_energy.solvers.base import SolverState
from lightning_energy.solvers.problem import Problem
from tests.solvers.test_banded_irls import _problem

REQUIRED = ("x", "value", "grad", "damping", "growth", "num_steps")


def _state(batch: int, **fields) -> SolverState:
    base = {name: torch.zeros(batch, 2) if name in ("x", "grad") else torch.zeros(batch)
            for name in REQUIRED}
    return SolverState(**{**base, **fields})


@pytest.mark.parametrize("make", [le.Newton, le.NewtonCG,
                                  le.GradientDescent, BandedIRLS],
                         ids=lambda make: make.__name__)
def test_initial_states_fill_every_required_field_per_sample(make) -> None:
    """Faulty variant: an initial state without a growth factor (or step count), which the
    merges of later states would then carry as a stale or missing value."""
    if make is BandedIRLS:
        _, problem, x = _problem()
    else:
        x = torch.randn(3, 4, dtype=torch.float64)
        problem = Problem(le.QuadraticEnergy(4).double(), x, (4,), torch.float64)
    state = make().init(problem, x)
    for name in REQUIRED:
        field = getattr(state, name)
        assert isinstance(field, torch.Tensor), name
        assert field.shape[0] == x.shape[0], name
    assert state.num_steps.dtype == torch.long
    assert torch.equal(state.num_steps, torch.zeros(x.shape[0], dtype=torch.long))


def test_merging_states_with_a_field_set_in_one_only_raises() -> None:
    """Faulty variant (of a solver): a step that returns a state without its new curvature;
    the merge used to keep the old state's silently, pairing a stale curvature with a new x."""
    old = _state(2, curvature=torch.ones(2, 2, 2))
    new = _state(2)
    keep = torch.tensor([True, False])
    with pytest.raises(ValueError, match="field `curvature` is None in one state only"):
        old.where(keep, new)
    with pytest.raises(ValueError, match="field `curvature` is None in one state only"):
        old.put(torch.tensor([0]), new.take(torch.tensor([0])))
    merged = old.where(keep, dataclasses.replace(new, curvature=2 * torch.ones(2, 2, 2),
                                                 x=torch.ones(2, 2)))
    assert merged.curvature is not None
    assert merged.curvature[:, 0, 0].tolist() == [2.0, 1.0]
    assert merged.x[:, 0].tolist() == [1.0, 0.0]


def test_a_sample_is_stalled_only_once_its_damping_exceeds_the_ceiling() -> None:
    """Faulty variant: a damping equal to ``max_damping`` already counted as stalled."""
    from lightning_energy.solvers.solution import SolverStatus

    solver = le.Newton(max_damping=100.0, tol=1e-9)
    state = _state(2, damping=torch.tensor([100.0, 100.5]), grad=torch.ones(2, 2),
                   num_steps=torch.zeros(2, dtype=torch.long))
    assert solver.status(state).tolist() == [int(SolverStatus.MAX_STEPS),
                                             int(SolverStatus.STALLED)]
    assert solver.terminate(state).tolist() == [False, True]
