"""Solver behaviour: per-sample stopping and status, dtype policy, multi-start, large n."""

import copy

import pytest
import torch

import lightning_energy as le
from lightning_energy.solvers.problem import Problem
from tests.helpers import CoupledLogCosh, DoubleWell, RobustLineFit, line_data


@pytest.mark.parametrize("solver", [le.Newton(tol=1e-10), le.NewtonCG(tol=1e-10),
                                    le.GradientDescent(tol=1e-8, max_steps=3000, step_size=0.1)])
def test_solvers_reach_the_same_minimum(solver):
    energy = CoupledLogCosh(4, 6).double()
    c = torch.randn(5, 6, dtype=torch.float64)
    ref = le.argmin(energy, c, solver=le.Newton(tol=1e-12)).x
    sol = le.argmin(energy, c, solver=solver)
    assert bool(sol.converged.all())
    assert torch.allclose(sol.x, ref, atol=1e-6)
    assert bool((sol.grad_norm <= solver.tol).all())


def test_least_squares_solvers_agree_and_lm_needs_few_steps():
    energy = RobustLineFit(12).double()
    data = line_data(6, 12)
    sols = [le.argmin(energy, data, solver=s) for s in
            (le.LevenbergMarquardt(tol=1e-10), le.GaussNewton(tol=1e-10), le.Newton(tol=1e-10))]
    for sol in sols:
        assert bool(sol.converged.all())
        assert torch.allclose(sol.x, sols[2].x, atol=1e-7)
    assert int(sols[0].num_steps.max()) < 30


def test_per_sample_stopping_freezes_finished_samples():
    energy = le.QuadraticEnergy(3).double()
    c = torch.randn(4, 3, dtype=torch.float64)
    x0 = energy.closed_form(c).detach()
    x0[2:] += 5.0  # samples 0, 1 start at the solution
    sol = le.argmin(energy, c, solver=le.Newton(tol=1e-9), x0=x0)
    assert sol.num_steps[:2].tolist() == [0, 0]
    assert bool((sol.num_steps[2:] > 0).all())
    assert torch.equal(sol.x[:2], x0[:2])


def test_status_codes_nonfinite_and_max_steps():
    energy = le.QuadraticEnergy(2).double()
    problem = Problem(energy, torch.zeros(2, 2, dtype=torch.float64), (2,))
    x0 = torch.tensor([[0.0, 0.0], [float("nan"), 0.0]], dtype=torch.float64)
    sol = le.GradientDescent(max_steps=1).solve(problem, x0)
    assert sol.status.tolist() == [le.SolverStatus.MAX_STEPS, le.SolverStatus.NONFINITE]
    assert sol.status_counts()["nonfinite"] == 1


def test_solve_dtype_policy_float64_for_float32_caller():
    energy = le.QuadraticEnergy(3)
    c = torch.randn(4, 3, requires_grad=True)
    sol = le.argmin(energy, c, solver=le.Newton(tol=1e-12, dtype="float64"))
    assert sol.x.dtype == torch.float32
    assert sol.value.dtype == torch.float64
    assert bool(sol.converged.all())  # tol 1e-12 is reachable only in float64
    (g,) = torch.autograd.grad(sol.x.sum(), c)
    assert g.dtype == torch.float32
    assert bool(torch.isfinite(g).all())


def test_multistart_keeps_lowest_energy():
    energy = DoubleWell().double()
    inputs = torch.tensor([[0.0]], dtype=torch.float64).expand(3, 1)
    tilt = torch.tensor([[0.0], [0.0], [0.0]], dtype=torch.float64)
    starts = torch.tensor([[-2.0], [0.3], [2.0]], dtype=torch.float64)
    sol = le.argmin(energy, inputs + tilt, solver=le.MultiStart(le.Newton(tol=1e-10), starts),
                    x0=torch.zeros(3, 1, dtype=torch.float64))
    assert torch.allclose(sol.x.abs(), torch.ones(3, 1, dtype=torch.float64), atol=1e-8)
    assert bool(sol.converged.all())


def test_newton_cg_handles_thousands_of_variables():
    n = 2000
    energy = le.QuadraticEnergy(n, shift=1.0).double()
    c = torch.randn(2, n, dtype=torch.float64)
    sol = le.argmin(energy, c, solver=le.NewtonCG(tol=1e-8, cg_max_iter=200))
    assert bool(sol.converged.all())
    residual = sol.x @ energy.matrix().detach().T - energy.b.detach() - c
    assert float(residual.norm()) < 1e-6


@pytest.mark.parametrize(("recorded", "vectorised"), [(False, False), (True, True), (False, True)],
                         ids=["loop", "forward-mode", "forward-mode-unrecorded"])
@pytest.mark.parametrize(("n", "m"), [(4, 9), (5, 3)])
def test_problem_jacobian_and_hessian_match_autograd_functional(n, m, recorded, vectorised,
                                                                 monkeypatch):
    from tests.helpers import LinearResiduals

    energy = LinearResiduals(n, m).double()
    energy.kernel = le.robust.Cauchy(0.7)
    c = torch.randn(3, m, dtype=torch.float64)
    x = torch.randn(3, n, dtype=torch.float64)
    # Without recording the solvers' reverse-mode loops run on CPU; with live parameters under
    # autograd, the forward-mode path, whose results stay attached to the parameters. On a GPU
    # the forward-mode path runs unrecorded too ("forward-mode-unrecorded" forces it here).
    problem = Problem(energy, c, (n,), detach=not recorded)
    if vectorised and not recorded:
        monkeypatch.setattr(Problem, "_vectorised", lambda self, x, kind="hessian": True)
    with torch.set_grad_enabled(recorded):
        _, jac = problem.jacobian(x)
        hess = problem.hessian(x)
    assert jac.requires_grad == recorded
    assert hess.requires_grad == recorded
    jac, hess = jac.detach(), hess.detach()
    for b in range(3):
        ref_j = torch.autograd.functional.jacobian(
            lambda z, b=b: energy.residuals(z[None], c[b : b + 1])[0], x[b])
        ref_h = torch.autograd.functional.hessian(
            lambda z, b=b: energy(z[None], c[b : b + 1])[0], x[b])
        assert torch.allclose(jac[b], ref_j, atol=1e-12)
        assert torch.allclose(hess[b], ref_h, atol=1e-10)


def test_dense_derivatives_take_forward_mode_when_recording_or_off_the_cpu():
    from tests.helpers import LinearResiduals

    energy = LinearResiduals(3, 4).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    detached = Problem(energy, torch.randn(2, 4, dtype=torch.float64), (3,))
    assert detached._vectorised(x) is False
    assert detached._vectorised(x.clone().requires_grad_(True)) is True
    with torch.no_grad():
        assert detached._vectorised(x.clone().requires_grad_(True)) is False
        assert detached._vectorised(torch.empty(2, 3, device="meta")) is True
    live = Problem(energy, torch.randn(2, 4, dtype=torch.float64), (3,), detach=False)
    assert live._vectorised(x) is True


@pytest.mark.parametrize(("kind", "method"), [("hessian", "value_grad_hessian"),
                                              ("jacobian", "jacobian")])
def test_on_cpu_small_batches_of_many_variables_take_forward_mode(kind, method):
    """The CPU size rule (solvers/problem.py): forward mode when n >= 15 and B*n is at most the
    kind's bound, and both paths give the same derivatives on either side of it. Faulty variants
    caught: the rule inverted or ignoring n (the toy's n = 1 solves were 3x slower in forward
    mode), a bound of the other kind, or a path whose derivatives differ."""
    from lightning_energy.solvers.problem import CPU_FORWARD_MODE_MAX_BN, CPU_FORWARD_MODE_MIN_N
    from tests.helpers import LinearResiduals

    n, m = CPU_FORWARD_MODE_MIN_N, 20
    most = CPU_FORWARD_MODE_MAX_BN[kind] // n
    energy = LinearResiduals(n, m).double()
    energy.kernel = le.robust.Cauchy(0.7)
    c = torch.randn(most + 1, m, dtype=torch.float64)
    x = torch.randn(most + 1, n, dtype=torch.float64)
    small, large = Problem(energy, c[:most], (n,)), Problem(energy, c, (n,))
    assert small._vectorised(x[:most], kind) is True
    assert large._vectorised(x, kind) is False
    few = Problem(LinearResiduals(n - 1, m).double(), c[:2], (n - 1,))
    assert few._vectorised(x[:2, : n - 1], kind) is False
    below = getattr(small, method)(x[:most])
    above = getattr(large, method)(x)
    for a, b in zip(below, above, strict=True):
        torch.testing.assert_close(a, b[:most], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["jacobian", "value_grad_hessian"])
@pytest.mark.parametrize(("n", "m"), [(3, 5), (5, 3)])
def test_recorded_derivatives_are_differentiable(n, m, method):
    from tests.helpers import LinearResiduals

    class SineResiduals(LinearResiduals):
        def residuals(self, x, inputs):
            return torch.sin(super().residuals(x, inputs))

    energy = SineResiduals(n, m).double()
    energy.kernel = le.robust.Cauchy(0.7)
    c = torch.randn(2, m, dtype=torch.float64)
    x = torch.randn(2, n, dtype=torch.float64)
    problem = Problem(energy, c, (n,), detach=False)

    def matrix(x_: torch.Tensor) -> torch.Tensor:  # the Jacobian (2, m, n) or Hessian (2, n, n)
        return getattr(problem, method)(x_)[-1]

    with torch.no_grad():
        weights = torch.randn_like(matrix(x))
        plain = matrix(x)  # the reverse-mode loop
    z = x.clone().requires_grad_(True)
    recorded = matrix(z)  # forward mode, recorded
    torch.testing.assert_close(recorded.detach(), plain, rtol=0, atol=1e-12)
    grad_x, grad_a = torch.autograd.grad((recorded * weights).sum(), (z, energy.a))

    def objective() -> float:
        with torch.no_grad():
            return float((matrix(x) * weights).sum())

    eps = 1e-6
    for value, grad, index in ((x, grad_x, (0, 0)), (x, grad_x, (1, n - 1)),
                               (energy.a, grad_a, (1, 2))):
        with torch.no_grad():
            value[index] += eps
            up = objective()
            value[index] -= 2 * eps
            down = objective()
            value[index] += eps
        assert grad[index].item() == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-8)


def test_status_not_positive_definite_when_steps_run_out_on_a_negative_curvature():
    from tests.helpers import DoubleWell

    energy = DoubleWell().double()
    inputs = torch.zeros(1, 1, dtype=torch.float64)
    problem = Problem(energy, inputs, (1,))
    x0 = torch.tensor([[0.01]], dtype=torch.float64)  # H ≈ −4: tiny initial damping fails
    sol = le.Newton(max_steps=1).solve(problem, x0)
    assert sol.status.tolist() == [le.SolverStatus.NOT_POSITIVE_DEFINITE]
    sol = le.Newton(max_steps=100, tol=1e-10).solve(problem, x0)
    assert sol.status.tolist() == [le.SolverStatus.CONVERGED]
    assert abs(abs(float(sol.x)) - 1.0) < 1e-8


def test_layer_works_under_inference_mode():
    energy = le.QuadraticEnergy(3).double()
    c = torch.randn(4, 3, dtype=torch.float64)
    with torch.inference_mode():
        sol = le.argmin(energy, c, solver=le.Newton(tol=1e-10))
    assert bool(sol.converged.all())
    assert torch.allclose(sol.x, energy.closed_form(c).detach(), atol=1e-8)


def test_chunked_layer_matches_unchunked_values_and_gradients():
    energy = CoupledLogCosh(3, 5).double()
    c = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    results = []
    for chunk in (None, 3):
        layer = le.EnergyLayer(energy, le.Newton(tol=1e-12), le.ImplicitAdjoint(1e-3),
                               chunk_size=chunk)
        sol = layer(c)
        grads = torch.autograd.grad(sol.x.pow(2).sum(), [energy.weight, c])
        results.append((sol.x, *grads))
        assert "backward/damping" in sol.diagnostics
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-12)


def test_chunk_size_solves_the_batch_in_chunks_with_shared_inputs_whole(monkeypatch):
    """Faulty variant: `chunk_size` ignored (the whole batch in one solve) or chunks overlap."""
    energy = CoupledLogCosh(3, 5).double()
    c = torch.randn(7, 5, dtype=torch.float64)
    shared = torch.ones(5, dtype=torch.float64)  # leading dimension is not B: never split
    adjoint = le.ImplicitAdjoint(1e-3)
    seen = []
    solve = adjoint.solve

    def spy(energy, solver, inputs, x0, shape, mask):
        seen.append((tuple(inputs[0].shape), tuple(inputs[1].shape), tuple(x0.shape)))
        return solve(energy, solver, inputs, x0, shape, mask)

    monkeypatch.setattr(adjoint, "solve", spy)
    monkeypatch.setattr(energy, "forward", lambda x, inputs: CoupledLogCosh.forward(
        energy, x, inputs[0]))
    layer = le.EnergyLayer(energy, le.Newton(tol=1e-12), adjoint, chunk_size=3)
    sol = layer((c, shared), torch.zeros(7, 3, dtype=torch.float64))
    assert seen == [((3, 5), (5,), (3, 3)), ((3, 5), (5,), (3, 3)), ((1, 5), (5,), (1, 3))]
    whole = le.argmin(energy, (c, shared), solver=le.Newton(tol=1e-12),
                      x0=torch.zeros(7, 3, dtype=torch.float64))
    assert torch.allclose(sol.x, whole.x, atol=1e-12)
    with pytest.raises(ValueError, match="chunk_size"):
        le.EnergyLayer(energy, le.Newton(), chunk_size=0)


def _spread_line_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Line fits whose LM solves take different numbers of steps (scaled data)."""
    t, y = line_data(6, 12)
    return t, y * torch.logspace(-2, 2, 6, dtype=torch.float64)[:, None]


@pytest.mark.parametrize("solver", [le.LevenbergMarquardt(tol=1e-10), le.Newton(tol=1e-10),
                                    le.NewtonCG(tol=1e-10)])
def test_steps_skip_finished_samples_with_the_same_result(solver, monkeypatch):
    import lightning_energy.solvers.base as base

    energy = RobustLineFit(12).double()
    data = _spread_line_data()
    sizes: list[int] = []
    select = base.select_problem
    def spy(problem, index, batch):
        sizes.append(index.numel())
        return select(problem, index, batch)

    monkeypatch.setattr(base, "select_problem", spy)
    compacted = le.argmin(energy, data, solver=solver)
    assert sizes, "no step ran on a compacted batch"
    assert max(sizes) < 6
    solver.compact = False
    try:
        full = le.argmin(energy, data, solver=solver)
    finally:
        solver.compact = True
    assert len(set(full.num_steps.tolist())) > 1  # the samples did finish at different steps
    assert torch.equal(compacted.num_steps, full.num_steps)
    assert torch.allclose(compacted.x, full.x, atol=1e-12, rtol=0)
    assert torch.equal(compacted.status, full.status)


def test_unrolled_gradients_are_the_same_with_compacted_steps():
    energy = RobustLineFit(12).double()
    t, y = _spread_line_data()
    y.requires_grad_(True)
    grads = []
    for compact in (True, False):
        solver = le.LevenbergMarquardt(tol=1e-10, max_steps=40)
        solver.compact = compact
        sol = le.argmin(energy, (t, y), solver=solver, adjoint=le.UnrolledAdjoint())
        grads.append(torch.autograd.grad(sol.x.pow(2).sum(), [energy.point_weights, y]))
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-10)


class _LineFitWithJacobian(RobustLineFit):
    """RobustLineFit with its Jacobian in closed form (optionally wrong, to test the checks)."""

    def __init__(self, num_points: int, wrong: bool = False, bad_shape: bool = False,
                 kernel: le.robust.RobustKernel | None = None) -> None:
        super().__init__(num_points, kernel)
        self.wrong, self.bad_shape = wrong, bad_shape

    def residuals_and_jacobian(self, x, inputs):
        t, _ = inputs
        w = self.point_weights.to(x.dtype)
        jac = torch.stack((-w * t, -w.expand_as(t) * (2.0 if self.wrong else 1.0)), dim=-1)
        return self.residuals(x, inputs), jac[:, :-1] if self.bad_shape else jac


def test_check_jacobian_when_only_the_kernel_is_learnable():
    """Catches: differentiating a Jacobian no parameter reaches (the issue's `RuntimeError:
    element 0 of tensors does not require grad` with PseudoHuber(0.3, learnable=True))."""
    from lightning_energy.testing import check_jacobian

    energy = _LineFitWithJacobian(12, kernel=le.robust.PseudoHuber(0.3, learnable=True))
    energy.point_weights.requires_grad_(False)
    jac_error, param_error = check_jacobian(energy, line_data(5, 12))
    assert jac_error < 1e-12
    assert param_error == 0.0  # the Jacobian does not depend on the kernel's scale


class _LineFitWithSystem(RobustLineFit):
    """RobustLineFit with its Gauss–Newton system in closed form (optionally wrong or misshapen)."""

    def __init__(self, num_points: int, wrong: bool = False, bad_shape: bool = False) -> None:
        super().__init__(num_points)
        self.wrong, self.bad_shape = wrong, bad_shape

    def gauss_newton_system(self, x, inputs):
        t, _ = inputs
        w = self.point_weights.to(x.dtype)
        jac = torch.stack((-w * t, -w.expand_as(t)), dim=-1)  # (B, m, 2)
        value, grad, hess = self.system_from_jacobian(self.residuals(x, inputs), jac)
        if self.wrong:
            hess = 2.0 * hess
        return value, grad, hess[:, :1] if self.bad_shape else hess


# closed form: its energy class, its check, what a wrong one's and a misshapen one's errors say
CLOSED_FORMS = {
    "jacobian": (_LineFitWithJacobian, "check_jacobian", "closed-form Jacobian differs",
                 r"Jacobian of shape \(5, 12, 2\)"),
    "system": (_LineFitWithSystem, "check_gauss_newton_system",
               "Gauss-Newton system differs", r"gauss_newton_system.*\(5, 2, 2\)"),
}


@pytest.mark.parametrize("kind", sorted(CLOSED_FORMS))
def test_closed_form_derivatives_are_used_and_checked(kind):
    import lightning_energy.testing

    closed_form, check_name, wrong_error, shape_error = CLOSED_FORMS[kind]
    check = getattr(lightning_energy.testing, check_name)
    data = line_data(5, 12)
    energy = closed_form(12).double()
    error, param_error = check(energy, data, x=torch.randn(5, 2, dtype=torch.float64))
    assert error < 1e-12
    assert param_error < 1e-12
    with pytest.raises(AssertionError, match=wrong_error):
        check(closed_form(12, wrong=True), data)
    with pytest.raises(AssertionError, match="does not implement"):
        check(RobustLineFit(12), data)
    # The solvers take the energy's closed form: a wrong one changes the LM path, a right one not.
    solver = le.LevenbergMarquardt(tol=1e-10)
    reference = le.argmin(RobustLineFit(12).double(), data, solver=solver)
    closed = le.argmin(energy, data, solver=solver)
    assert torch.allclose(closed.x, reference.x, atol=1e-9)
    wrong = closed_form(12, wrong=True).double()
    assert not torch.equal(le.argmin(wrong, data, solver=solver).num_steps, reference.num_steps)
    wrong.closed_form_jacobian = False  # switched off: back to autograd, the reference's path
    assert torch.equal(le.argmin(wrong, data, solver=solver).num_steps, reference.num_steps)
    with pytest.raises(le.ShapeError, match=shape_error):
        le.argmin(closed_form(12, bad_shape=True).double(), data, solver=solver)


class _ScaledLineFit(_LineFitWithSystem):
    """Residuals changed below the class that gives the system (and below the Jacobian's)."""

    def residuals(self, x, inputs):
        return 3.0 * super().residuals(x, inputs)


class _ScaledLineFitWithJacobian(_LineFitWithJacobian):
    def residuals(self, x, inputs):
        return 3.0 * super().residuals(x, inputs)


def test_an_inherited_closed_form_of_other_residuals_is_not_used():
    """Catches: a subclass that changes the residuals solved with its parent's system or
    Jacobian (a wrong gradient, silently)."""
    data = line_data(5, 12)
    solver = le.LevenbergMarquardt(tol=1e-10, max_steps=200)
    for changed in (_ScaledLineFit(12).double(), _ScaledLineFitWithJacobian(12).double()):
        assert not changed.has_gauss_newton_system
        assert not changed.has_jacobian
        problem = Problem(changed, data, (2,))
        x = torch.randn(5, 2, dtype=torch.float64)
        value, grad, _ = problem.gauss_newton(x)
        torch.testing.assert_close(value, problem.value(x))
        torch.testing.assert_close(grad, problem.gradient(x))
        reference = copy.deepcopy(changed)
        reference.closed_form_jacobian = False
        torch.testing.assert_close(le.argmin(changed, data, solver=solver).x,
                                   le.argmin(reference, data, solver=solver).x)
    assert _LineFitWithSystem(12).has_gauss_newton_system
    assert _LineFitWithJacobian(12).has_jacobian


def test_multistart_forwards_compact_to_the_solver_that_runs():
    inner = le.Newton()
    solver = le.MultiStart(inner, starts=2)
    assert solver.compact
    solver.compact = False
    assert inner.compact is False
    assert le.Newton.compact is True  # the class default is untouched
