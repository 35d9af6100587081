"""Nielsen's damping rule of the trust-region solvers, case by case in closed form.

With ρ = (E(x) − E(x + d)) / predicted: a step is accepted when ρ > η and the predicted decrease
is positive (or when the change is below rounding and ‖∇E‖ falls), and then μ ← μ ·
max(1/3, 1 − (2ρ − 1)³) with ρ clamped to 1 (ρ = 1 where it is not a positive finite number)
and the growth factor reset to 2; a rejected step keeps x and sets μ ← μ · growth,
growth ← 2 · growth.
"""

from __future__ import annotations

import pytest
import torch

from lightning_energy.solvers.base import SolverState
from lightning_energy.solvers.trust_region import gain_ratio_update

F64 = torch.float64


def _states(values: list[float], new_values: list[float], new_grad: float = 0.5):
    b = len(values)
    state = SolverState(x=torch.zeros(b, 2, dtype=F64), value=torch.tensor(values, dtype=F64),
                        grad=torch.ones(b, 2, dtype=F64), damping=torch.full((b,), 6.0, dtype=F64),
                        growth=torch.full((b,), 4.0, dtype=F64),
                        num_steps=torch.zeros(b, dtype=torch.long))
    proposal = SolverState(x=torch.ones(b, 2, dtype=F64), value=torch.tensor(new_values, dtype=F64),
                           grad=torch.full((b, 2), new_grad, dtype=F64), damping=state.damping,
                           growth=state.growth, num_steps=state.num_steps)
    return state, proposal


@pytest.mark.parametrize(("rho", "shrink"), [(1.0, 1 / 3), (0.75, 0.875), (0.55, 1 - 0.1**3),
                                             (1.5, 1 / 3)])
def test_an_accepted_step_shrinks_mu_by_nielsens_factor(rho: float, shrink: float) -> None:
    """Faulty variants: the cube, the 2ρ − 1, the 1/3 floor or the clamp at ρ = 1 changed; the
    growth factor after an accepted step other than 2."""
    state, proposal = _states([10.0], [10.0 - rho])
    new = gain_ratio_update(state, proposal, torch.tensor([1.0], dtype=F64),
                            torch.tensor([True]), eta=0.5)
    assert torch.equal(new.x, proposal.x)
    assert new.damping.item() == pytest.approx(6.0 * shrink, rel=1e-14)
    assert new.growth.tolist() == [2.0]
    assert new.indefinite.tolist() == [False]


@pytest.mark.parametrize(("actual", "predicted"), [(1.0, 2.0), (-1.0, 1.0), (1.0, 0.0)])
def test_a_rejected_step_keeps_x_and_grows_mu_by_the_growth_factor(actual: float,
                                                                   predicted: float) -> None:
    """Faulty variants: ρ = η accepted (ρ = 0.5 = η here), a zero predicted decrease accepted,
    the growth doubling changed to tripling."""
    state, proposal = _states([10.0], [10.0 - actual], new_grad=2.0)
    new = gain_ratio_update(state, proposal, torch.tensor([predicted], dtype=F64),
                            torch.tensor([True]), eta=0.5)
    assert torch.equal(new.x, state.x)
    assert new.value.tolist() == [10.0]
    assert new.damping.tolist() == [24.0]
    assert new.growth.tolist() == [8.0]


def test_a_step_lost_in_rounding_counts_as_a_perfect_fit_when_the_gradient_falls() -> None:
    """Faulty variant: ρ = 0 (no measurable change) used as it is, which grows μ."""
    state, proposal = _states([10.0], [10.0])  # no change; ‖∇E‖ falls from √2 to 0.5·√2
    new = gain_ratio_update(state, proposal, torch.tensor([1.0], dtype=F64),
                            torch.tensor([True]), eta=0.5)
    assert torch.equal(new.x, proposal.x)
    assert new.damping.item() == pytest.approx(2.0, rel=1e-14)


def test_only_the_samples_with_a_non_finite_proposal_are_rejected() -> None:
    """Faulty variants: a proposal with a finite energy but a NaN gradient accepted, or one NaN
    rejecting the whole batch."""
    state, proposal = _states([10.0, 10.0], [9.0, 9.0])
    proposal.grad[1, 0] = torch.nan
    new = gain_ratio_update(state, proposal, torch.ones(2, dtype=F64),
                            torch.ones(2, dtype=torch.bool), eta=0.5)
    assert new.x[:, 0].tolist() == [1.0, 0.0]
    assert new.damping.tolist() == [2.0, 24.0]
    # A failed factorisation (ok = False) is rejected and flagged indefinite.
    new = gain_ratio_update(state, proposal, torch.ones(2, dtype=F64),
                            torch.tensor([False, True]), eta=0.5)
    assert new.x[:, 0].tolist() == [0.0, 0.0]
    assert new.indefinite.tolist() == [True, False]


@pytest.mark.parametrize(("rise", "grad", "below"), [(64.0, 0.5, True), (64.5, 0.5, False),
                                                    (0.0, 1.0, False)])
def test_below_rounding_means_within_64_eps_and_a_falling_gradient(rise, grad, below) -> None:
    """Faulty variants: an allowance of 65 eps or of 64 eps · (2 + |E|), a change of exactly
    the allowance not counted, an unchanged ‖∇E‖ counted as falling.

    At E = 0 the allowance is 64 eps exactly, and the changes below are exact."""
    from lightning_energy.solvers.trust_region import below_rounding

    eps = torch.finfo(F64).eps
    state, proposal = _states([0.0], [rise * eps], new_grad=grad)
    assert below_rounding(state, proposal).tolist() == [below]
