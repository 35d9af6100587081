"""One BandedIRLS step against an oracle written from its docstring, in float64.

From x with damping μ the step proposes the IRLS step (the minimiser of the quadratic majoriser,
solved densely here) and the Newton step −(H + μ·s·I)⁻¹∇ₓE (H by autograd, s the mean |diagonal|
of H; no proposal where H + μ·s·I is not positive definite), keeps the lower energy, divides μ
by 3 after a Newton step that lowered the energy and multiplies it by 4 (at most 1e8) otherwise,
and stalls (x kept, μ = ∞) when the best proposal raises the energy by more than
64·eps·(1 + |E|).
"""

from __future__ import annotations

import dataclasses

import pytest
import scipy.linalg
import torch
from torch import Tensor

from lightning_energy.datasets.tracking_batch import TrackingSample, collate_tracking
from lightning_energy.datasets.tracking_synthetic import simulate_tracking
from lightning_energy.energies.tracking import TrackFusionEnergy, fusion_inputs
from lightning_energy.linalg.banded import dense_from_bands
from lightning_energy.solvers.banded_irls import BandedIRLS
from lightning_energy.solvers.base import SolverState
from lightning_energy.solvers.problem import Problem

F64 = torch.float64
EPS = torch.finfo(F64).eps


def _problem(length: int = 10, sequences: int = 3) -> tuple[TrackFusionEnergy, Problem, Tensor]:
    data = simulate_tracking(sequences, 60, 4, seed=3)
    items = [TrackingSample.from_arrays(d.boxes, d.gt, d.sequence).window(5, length)
             for d in data]
    batch = collate_tracking(items)
    inputs, _ = fusion_inputs(batch.boxes, batch.valid, batch.frame_valid)
    energy = TrackFusionEnergy(4).double()
    x0 = energy.initial_solution(inputs).double()
    problem = Problem(energy, inputs, tuple(x0.shape[1:]), F64, detach=True)
    return energy, problem, x0.reshape(x0.shape[0], -1)


def _value(problem: Problem, x: Tensor) -> Tensor:
    return problem.energy(x.reshape(x.shape[0], *problem.shape), problem.inputs).double()


def _oracle(problem: Problem, state: SolverState) -> dict[str, Tensor]:
    """The step's result by the docstring, sample by sample."""
    energy, inputs, x = problem.energy, problem.inputs, state.x
    b, n = x.shape
    _, bands, rhs = energy.irls_system(x.reshape(b, *problem.shape), inputs)  # (B, 4, 3, T)
    z = torch.linalg.solve(dense_from_bands(bands), rhs[..., None])[..., 0]  # (B, 4, T)
    x_irls = z.permute(0, 2, 1).reshape(b, n)
    hess = torch.autograd.functional.hessian(lambda v: _value(problem, v).sum(), x)
    hess = hess[torch.arange(b), :, torch.arange(b), :]  # (B, n, n): samples are independent
    grad = torch.autograd.functional.jacobian(lambda v: _value(problem, v).sum(), x)
    x_newton, newton_ok = x.clone(), torch.ones(b, dtype=torch.bool)
    for i in range(b):
        s = hess[i].diagonal().abs().mean()
        damped = (hess[i] + state.damping[i] * s * torch.eye(n, dtype=F64)).numpy()
        try:  # LAPACK's Cholesky, independent of the solver's
            factor = scipy.linalg.cho_factor(damped)
        except scipy.linalg.LinAlgError:
            newton_ok[i] = False
            continue
        x_newton[i] = x[i] - torch.from_numpy(scipy.linalg.cho_solve(factor, grad[i].numpy()))
    v_irls, v_newton = _value(problem, x_irls), _value(problem, x_newton)
    v_newton = torch.where(newton_ok, v_newton, torch.inf)
    lowered = torch.isfinite(v_newton) & (v_newton < state.value)
    damping = torch.where(lowered, state.damping / 3, torch.clamp(4 * state.damping, max=1e8))
    use_newton = v_newton < v_irls
    best_x = torch.where(use_newton[:, None], x_newton, x_irls)
    best_v = torch.where(use_newton, v_newton, v_irls)
    progress = best_v <= state.value + 64 * EPS * (1 + state.value.abs())
    return {"x": torch.where(progress[:, None], best_x, x),
            "damping": torch.where(progress, damping, torch.inf),
            "x_irls": x_irls, "lowered": lowered, "newton_ok": newton_ok,
            "use_newton": use_newton}


def test_steps_follow_the_oracle_from_every_damping() -> None:
    """Faulty variants: μ shrunk or grown by another factor, or by the wrong test; the Newton
    damping scaled by another diagonal or divided by it; a block that does not factorise given
    more damping instead of no proposal; the IRLS system, damping, growth or step count of the
    new iterate lost (the merge would keep the old ones)."""
    energy, problem, x = _problem()
    solver = BandedIRLS(tol=1e-12)
    # A start 3 px off the median: some Hessians indefinite, some Newton steps too long.
    x = x + 3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    state = solver.init(problem, x)
    state = dataclasses.replace(state, damping=torch.tensor([1e-9, 1e-3, 30.0], dtype=F64),
                                growth=torch.tensor([1.5, 2.0, 3.0], dtype=F64),
                                num_steps=torch.tensor([4, 5, 6]))
    seen = {"lowered": set(), "newton_ok": set(), "use_newton": set()}
    for _ in range(3):
        expected = _oracle(problem, state)
        new = solver.step(problem, state)
        torch.testing.assert_close(new.x, expected["x"], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(new.damping, expected["damping"], rtol=1e-12, atol=0)
        torch.testing.assert_close(new.value, _value(problem, new.x), rtol=1e-12, atol=1e-12)
        _, bands, rhs = energy.irls_system(new.x.reshape(3, *problem.shape), problem.inputs)
        assert new.curvature is not None
        torch.testing.assert_close(new.curvature, torch.cat([bands, rhs[:, :, None]], 2))
        assert torch.equal(new.growth, state.growth)  # IRLS keeps no growth factor
        assert torch.equal(new.num_steps, state.num_steps)  # counted by the loop, not the step
        for key in seen:
            seen[key].update(expected[key].tolist())
        state = new
    # The steps met both outcomes of every branch.
    assert seen == {"lowered": {True, False}, "newton_ok": {True, False},
                    "use_newton": {True, False}}


def _linear_track_problem() -> Problem:
    """Every tracker on one constant-velocity track: the energy's minimum is about 0.013."""
    t = torch.arange(10, dtype=F64)[:, None]
    track = torch.tensor([100.0, 50.0, 40.0, 80.0], dtype=F64) + t * torch.tensor(
        [1.0, 2.0, 0.5, 0.3], dtype=F64)
    boxes = track[None, :, None, :].expand(3, 10, 4, 4).float()
    inputs, _ = fusion_inputs(boxes, torch.ones(3, 10, 4, dtype=torch.bool),
                              torch.ones(3, 10, dtype=torch.bool))
    energy = TrackFusionEnergy(4).double()
    return Problem(energy, inputs, (10, 4), F64, detach=True)


@pytest.mark.parametrize(("data", "raised_by", "stalls"), [
    ("linear", 63.5, False), ("linear", 64.5, True), ("simulated", 32, False),
    ("simulated", 128, True)])
def test_progress_allows_a_rise_of_64_eps_relative_to_the_energy(data: str, raised_by: float,
                                                                 stalls: bool) -> None:
    """Faulty variants: a rounding allowance of 65 eps, of 64 eps · (2 + |E|), of
    64 eps / (1 + |E|) or of 64 / eps.

    At a minimum both proposals return the minimum, so a current value set ``raised_by`` ×
    eps · (1 + |E|) below it makes the step a rise of that much: within the allowance it is
    progress, beyond it the sample stalls. Near E = 0 (the linear track) the allowance's
    constant is resolved to a fraction of an eps."""
    problem = _linear_track_problem() if data == "linear" else _problem()[1]
    solver = BandedIRLS(tol=1e-12)
    x_star = solver.solve(problem, problem.energy.initial_solution(problem.inputs).double()
                          .reshape(3, -1)).x.reshape(3, -1)
    state = solver.init(problem, x_star)
    rise = raised_by * EPS * (1 + state.value.abs())
    state = dataclasses.replace(state, value=state.value - rise)
    new = solver.step(problem, state)
    assert torch.isinf(new.damping).tolist() == [stalls] * 3
    if stalls:
        assert torch.equal(new.x, state.x)
    else:  # a finite Newton step that did not lower the energy: μ grows (faulty: finite = lower)
        torch.testing.assert_close(new.damping, 4 * state.damping, rtol=1e-15, atol=0)


@pytest.mark.parametrize("dense_below", [10, 0])  # windows of T = 10: LAPACK's banded route
def test_the_banded_route_takes_the_same_steps_with_one_lapack_solve_per_block(
        monkeypatch, dense_below: int) -> None:
    """Faulty variants: a step, Newton step or update map that takes the dense route (the
    default ``dense_below``, or T = ``dense_below`` counted as short), or reads the bands with
    the right-hand side as a fourth band on the banded route."""
    import lightning_energy.linalg.banded as banded_module

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return scipy.linalg.solveh_banded(*args, **kwargs)

    monkeypatch.setattr(banded_module, "solveh_banded", counted)
    _, problem, x = _problem()
    x = x + 3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    dense, banded = BandedIRLS(dense_below=11), BandedIRLS(dense_below=dense_below)
    a, b = dense.init(problem, x), banded.init(problem, x)
    for _ in range(3):
        a = dense.step(problem, a)
        assert not calls
        b = banded.step(problem, b)
        assert len(calls) == 2 * 3 * 4  # IRLS and Newton: 3 windows × 4 coordinates each
        calls.clear()
        torch.testing.assert_close(b.x, a.x, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(b.damping, a.damping)
    damping = torch.ones(3, dtype=F64)
    torch.testing.assert_close(banded.update(problem, x, damping),
                               dense.update(problem, x, damping))
    assert len(calls) == 3 * 4


def test_the_update_map_is_the_irls_step() -> None:
    """Faulty variants: the update map solving another system, or unshuffling the frame-major
    layout wrongly (it has no test through an adjoint: TruncatedAdjoint is not used with
    BandedIRLS by any recipe)."""
    _, problem, x = _problem()
    x = x + 3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    solver = BandedIRLS()
    state = dataclasses.replace(solver.init(problem, x), damping=torch.ones(3, dtype=F64))
    expected = _oracle(problem, state)
    torch.testing.assert_close(solver.update(problem, x, state.damping), expected["x_irls"],
                               rtol=1e-10, atol=1e-10)


def test_a_newton_block_indefinite_by_less_than_the_fallback_floor_gives_no_proposal() -> None:
    """Faulty variant: the Newton solve allowed one damping retry (the retry's floor
    1e-10 · (1 + mean |diag|) would then make a barely indefinite block factorise)."""

    class Bands:
        inputs = None

        def call(self, method: str, *args) -> Tensor:
            assert method == "hessian_bands"
            bands = torch.zeros(1, 1, 3, 3, dtype=F64)
            bands[0, 0, 0] = torch.tensor([1.0, 1.0, -1e-10], dtype=F64)  # floor ≈ 1.7e-10
            return bands

    state = SolverState(torch.zeros(1, 3, dtype=F64), torch.zeros(1, dtype=F64),
                        torch.ones(1, 3, dtype=F64), torch.zeros(1, dtype=F64),
                        torch.ones(1, dtype=F64), torch.zeros(1, dtype=torch.long),
                        torch.zeros(1, 1, 4, 3, dtype=F64))
    _, failed = BandedIRLS()._newton_step(Bands(), state)  # type: ignore[arg-type]
    assert failed.tolist() == [True]
