"""Every solver's documented defaults, and every constructor argument reaching the solver.

A changed default silently changes every result computed with it, and an argument that is not
handed on (to the base class) is silently ignored; both pass every test that spells out all
arguments or uses none.
"""

from __future__ import annotations

import pytest
import torch

import lightning_energy as le
from lightning_energy.solvers import BandedIRLS

TRUST_REGION = {"max_steps": 50, "tol": 1e-6, "initial_damping": 1e-3, "eta": 1e-4,
                "dtype": None, "max_damping": 1e16}
DEFAULTS = {
    le.Newton: TRUST_REGION,
    le.LevenbergMarquardt: TRUST_REGION,
    le.BlockArrowNewton: TRUST_REGION,
    le.BlockArrowLevenbergMarquardt: {**TRUST_REGION, "kernel_curvature": False},
    # Gauss–Newton is Levenberg–Marquardt started (nearly) undamped.
    le.GaussNewton: {**TRUST_REGION, "initial_damping": 1e-10},
    le.NewtonCG: {**TRUST_REGION, "cg_max_iter": None, "cg_rtol": 1e-6},
    le.GradientDescent: {"max_steps": 500, "tol": 1e-6, "step_size": 1e-2, "increase": 1.2,
                         "decrease": 0.5, "armijo": 1e-4, "dtype": None, "max_damping": 1e16},
    BandedIRLS: {"max_steps": 50, "tol": 1e-6, "dtype": torch.float64, "dense_below": 256,
                 "max_damping": 1e8},
}
# One value per argument, none of them a default.
GIVEN = {"max_steps": 7, "tol": 3e-5, "initial_damping": 0.25, "eta": 0.1, "dtype": "float32",
         "max_damping": 1e9, "kernel_curvature": True, "cg_max_iter": 4, "cg_rtol": 1e-3,
         "step_size": 0.3, "increase": 2.0, "decrease": 0.25, "armijo": 0.05,
         "dense_below": 17}
NOT_ARGUMENTS = {le.GaussNewton: {"initial_damping"}, BandedIRLS: {"max_damping"}}


@pytest.mark.parametrize("cls", list(DEFAULTS), ids=lambda cls: cls.__name__)
def test_documented_defaults(cls) -> None:
    solver = cls()
    assert {name: getattr(solver, name) for name in DEFAULTS[cls]} == DEFAULTS[cls]


@pytest.mark.parametrize("cls", list(DEFAULTS), ids=lambda cls: cls.__name__)
def test_every_argument_reaches_the_solver(cls) -> None:
    names = set(DEFAULTS[cls]) - NOT_ARGUMENTS.get(cls, set())
    solver = cls(**{name: GIVEN[name] for name in names})
    expected = {name: torch.float32 if name == "dtype" else GIVEN[name] for name in names}
    assert {name: getattr(solver, name) for name in names} == expected


def test_multistart_defaults_and_a_single_start() -> None:
    """Faulty variants: other default starts, scale or seed; one start refused."""
    multi = le.MultiStart(le.Newton())
    assert (multi.starts, multi.scale, multi.seed) == (4, 1.0, 0)
    assert le.MultiStart(le.Newton(), starts=1).num_starts == 1
    with pytest.raises(ValueError, match="starts"):
        le.MultiStart(le.Newton(), starts=0)


def test_the_base_solver_defaults_and_a_zero_tolerance() -> None:
    """Faulty variants: other defaults of ``Solver`` (a subclass of one's own inherits them), or
    ``tol=0`` (run to the step budget) refused."""

    class Minimal(le.Solver):
        def init(self, problem, x):
            raise NotImplementedError

        def step(self, problem, state):
            raise NotImplementedError

    solver = Minimal()
    assert (solver.max_steps, solver.tol, solver.dtype, solver.max_damping) == (50, 1e-6, None,
                                                                               1e16)
    assert le.Newton(tol=0.0).tol == 0.0
