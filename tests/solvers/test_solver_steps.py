"""Single steps of GradientDescent, NewtonCG and MultiStart on problems given in closed form.

The problem objects below give per-sample quadratics E_b(x) = ½ xᵀA_b x − b_bᵀx (or chosen
values) directly, so each step's acceptance rule and damping update is checked to the bit.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import lightning_energy as le
from lightning_energy.solvers.problem import Problem

F64 = torch.float64
EPS = torch.finfo(F64).eps


class Quadratics:
    """The slice of :class:`~lightning_energy.solvers.Problem` that the steps use."""

    def __init__(self, a: Tensor, b: Tensor, offset: Tensor | None = None) -> None:
        self.a, self.b = a, b
        self.offset = torch.zeros(a.shape[0], dtype=F64) if offset is None else offset
        self.calls = 0

    def value_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ax = torch.einsum("bij,bj->bi", self.a, x)
        # Every evaluation after the first adds `offset`: the proposal looks worse than it is.
        value = 0.5 * (x * ax).sum(-1) - (self.b * x).sum(-1) + self.calls * self.offset
        self.calls += 1
        return value, ax - self.b

    def linearize(self, x: Tensor):
        return lambda v: torch.einsum("bij,bj->bi", self.a, v)

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        return self.linearize(x)(v)

    def value_grad_hessian(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        value, grad = self.value_and_grad(x)
        return value, grad, self.a


def _identity(batch: int, n: int) -> Tensor:
    return torch.eye(n, dtype=F64).expand(batch, n, n).clone()


@pytest.mark.parametrize(("armijo", "accepted"), [(0.3, True), (0.6, False)])
def test_gradient_descent_armijo_condition_uses_the_squared_gradient_norm(armijo, accepted):
    """Faulty variant: the sufficient decrease measured against ‖∇E‖³ instead of ‖∇E‖².

    E = ½‖x‖² from ‖x‖ = 10 with step 1 lands on 0: the decrease is 50 = ½ α‖∇E‖², accepted
    for an Armijo constant below ½ and rejected above it."""
    problem = Quadratics(_identity(1, 2), torch.zeros(1, 2, dtype=F64))
    solver = le.GradientDescent(step_size=1.0, armijo=armijo, increase=2.0, decrease=0.5)
    x = torch.tensor([[6.0, 8.0]], dtype=F64)
    new = solver.step(problem, solver.init(problem, x))
    if accepted:
        assert torch.equal(new.x, torch.zeros(1, 2, dtype=F64))
        assert new.damping.tolist() == [0.5]  # the step grows by `increase`
    else:
        assert torch.equal(new.x, x)
        assert new.damping.tolist() == [2.0]  # and shrinks by `decrease`


def test_gradient_descent_rejects_only_the_samples_whose_gradient_is_not_finite():
    """Faulty variant: one non-finite gradient in the batch rejects every sample's step."""
    problem = Quadratics(_identity(2, 2), torch.zeros(2, 2, dtype=F64))
    solver = le.GradientDescent(step_size=0.5)
    state = solver.init(problem, torch.ones(2, 2, dtype=F64))
    good = problem.value_and_grad

    def one_nan(x: Tensor) -> tuple[Tensor, Tensor]:
        value, grad = good(x)
        return value, torch.cat([grad[:1], torch.full_like(grad[1:], torch.nan)])

    problem.value_and_grad = one_nan  # type: ignore[method-assign]
    new = solver.step(problem, state)
    assert torch.equal(new.x[0], torch.full((2,), 0.5, dtype=F64))
    assert torch.equal(new.x[1], torch.ones(2, dtype=F64))


def test_gradient_descent_accepts_a_constant_step_size():
    """Faulty variant: ``increase`` = 1 (a fixed step) refused as if it had to be > 1."""
    assert le.GradientDescent(increase=1.0).increase == 1.0


def test_newton_cg_accepts_an_exact_model_and_shrinks_the_damping_threefold():
    """Faulty variants: a predicted decrease off by a factor (ρ ≠ 1 on a quadratic), or summed
    over the whole batch (each sample's ρ then depends on the others)."""
    a = torch.stack([torch.diag(torch.tensor([1.0, 2.0, 4.0], dtype=F64)),
                     torch.diag(torch.tensor([100.0, 300.0, 900.0], dtype=F64))])
    problem = Quadratics(a, torch.ones(2, 3, dtype=F64))
    solver = le.NewtonCG(eta=0.9, cg_rtol=1e-14, initial_damping=0.1)
    state = solver.init(problem, torch.zeros(2, 3, dtype=F64))
    new = solver.step(problem, state)
    mu = state.damping[:, None, None] * torch.eye(3, dtype=F64)
    expected = torch.linalg.solve(a + mu, problem.b[..., None])[..., 0]
    torch.testing.assert_close(new.x, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(new.damping, state.damping / 3, rtol=1e-9, atol=0)


def test_newton_cg_doubles_the_damping_on_a_first_rejection_and_then_its_growth():
    """Faulty variant: an initial growth factor of 3 instead of 2."""
    problem = Quadratics(_identity(1, 2), torch.ones(1, 2, dtype=F64),
                         offset=torch.tensor([10.0], dtype=F64))  # every proposal looks worse
    solver = le.NewtonCG()
    state = solver.init(problem, torch.zeros(1, 2, dtype=F64))
    once = solver.step(problem, state)
    twice = solver.step(problem, once)
    assert torch.equal(once.x, state.x)
    torch.testing.assert_close(once.damping, 2 * state.damping, rtol=1e-15, atol=0)
    torch.testing.assert_close(twice.damping, 8 * state.damping, rtol=1e-15, atol=0)


def test_multistart_steps_are_the_inner_solvers():
    """Faulty variants: MultiStart's init, step, update or terminate not handing its arguments
    to the inner solver."""
    energy = le.QuadraticEnergy(3, seed=1).double()
    c = torch.randn(2, 3, dtype=F64)
    problem = Problem(energy, c, (3,), F64, detach=True)
    inner = le.Newton(tol=1e-9)
    multi = le.MultiStart(inner, starts=2)
    x = torch.zeros(2, 3, dtype=F64)
    a, b = inner.init(problem, x), multi.init(problem, x)
    torch.testing.assert_close(b.x, a.x)
    torch.testing.assert_close(b.damping, a.damping)
    a, b = inner.step(problem, a), multi.step(problem, b)
    torch.testing.assert_close(b.x, a.x)
    assert torch.equal(multi.terminate(b), inner.terminate(a))
    damping = torch.full((2,), 0.5, dtype=F64)
    torch.testing.assert_close(multi.update(problem, x, damping), inner.update(problem, x, damping))


def test_multistart_run_honours_a_step_budget():
    """Faulty variant: the budget given to ``run`` not handed to the inner solver's run."""
    energy = le.QuadraticEnergy(3, seed=1).double()
    c = torch.randn(2, 3, dtype=F64)
    problem = Problem(energy, c, (3,), F64, detach=True)
    multi = le.MultiStart(le.Newton(tol=1e-9), starts=[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    state = multi.run(problem, torch.zeros(2, 3, dtype=F64), max_steps=0)
    assert state.num_steps.tolist() == [0, 0]
    assert bool((state.grad.norm(dim=-1) > 1e-3).all())  # nowhere near converged


def test_the_base_repr_names_the_class():
    """Faulty variant: the repr names another type."""
    assert repr(le.GradientDescent(max_steps=3, tol=0.5)) == "GradientDescent(max_steps=3, tol=0.5)"


def test_multistart_points_keep_x0s_dtype_and_the_given_scale() -> None:
    """Faulty variants: explicit starts stored in float32 (0.1 is then off by 1e-9), offsets
    not cast to x0's dtype, or random offsets of scale / N(0, 1) instead of scale · N(0, 1)."""
    x0 = torch.zeros(2, 3, dtype=F64)
    given = le.MultiStart(le.Newton(), starts=[[0.0, 0.0, 0.0], [0.1, -0.2, 0.3]])
    points = given.initial_points(x0)
    assert points.dtype == F64
    assert points[1, 0].tolist() == [0.1, -0.2, 0.3]
    assert given.initial_points(x0.float()).dtype == torch.float32
    drawn = le.MultiStart(le.Newton(), starts=401, scale=0.1).initial_points(x0)
    assert torch.equal(drawn[0], x0)  # the first start is x0 itself
    spread = drawn[1:].std()
    assert 0.09 < float(spread) < 0.11


def test_multistart_run_keeps_every_field_of_the_best_start() -> None:
    """Faulty variants: the best start's growth, curvature or indefinite flags dropped from the
    state ``run`` returns (the status of an indefinite solve is read from them)."""
    energy = le.QuadraticEnergy(3, seed=1).double()
    c = torch.randn(2, 3, dtype=F64)
    problem = Problem(energy, c, (3,), F64, detach=True)
    inner = le.Newton(tol=1e-9)
    state = le.MultiStart(inner, starts=[[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]]).run(
        problem, torch.zeros(2, 3, dtype=F64), max_steps=1)
    alone = inner.run(problem, torch.zeros(2, 3, dtype=F64), max_steps=1)
    for name in ("x", "value", "growth", "damping", "curvature", "indefinite"):
        mine, theirs = getattr(state, name), getattr(alone, name)
        assert mine is not None, name
        assert mine.shape == theirs.shape, name
    torch.testing.assert_close(state.curvature, alone.curvature)


@pytest.mark.parametrize("make", [le.Newton, le.NewtonCG], ids=lambda make: make.__name__)
def test_trust_region_solvers_start_at_eps_damping_where_the_curvature_is_zero(make):
    """Faulty variant: eps subtracted from the initial damping (negative on a flat start)."""
    problem = Quadratics(torch.zeros(1, 3, 3, dtype=F64), torch.zeros(1, 3, dtype=F64))
    assert make().init(problem, torch.ones(1, 3, dtype=F64)).damping.tolist() == [EPS]


def test_select_problem_slices_every_per_sample_tensor_and_keeps_the_rest() -> None:
    """Faulty variants: (B,) tensors counted as shared (only those of two or more dimensions
    sliced), or a 0-dimensional tensor's leading size read (an IndexError)."""
    from lightning_energy.solvers.problem import select_problem

    energy = le.QuadraticEnergy(2).double()
    inputs = {"c": torch.arange(6.0).reshape(3, 2), "w": torch.arange(3.0),
              "scalar": torch.tensor(7.0), "shared": torch.ones(5)}
    problem = Problem(energy, inputs, (2,), F64, detach=True)
    part = select_problem(problem, torch.tensor([2, 0]), batch=3)
    assert part.inputs["c"].tolist() == [[4.0, 5.0], [0.0, 1.0]]
    assert part.inputs["w"].tolist() == [2.0, 0.0]
    assert part.inputs["scalar"].item() == 7.0
    assert part.inputs["shared"].shape == (5,)


@pytest.mark.parametrize("detach", [True, False])
def test_a_problem_casts_floating_tensors_only_and_detaches_on_request(detach: bool) -> None:
    """Faulty variants: inputs or parameters not cast to the solve dtype (or integer tensors
    cast too); parameters or inputs left attached to the graph of a detached problem."""
    energy = le.QuadraticEnergy(2)
    energy.register_buffer("count", torch.tensor(3))
    inputs = {"c": torch.randn(2, 2, requires_grad=True), "index": torch.tensor([0, 1])}
    problem = Problem(energy, inputs, (2,), F64, detach=detach)
    assert problem.inputs["c"].dtype == problem.params["factor"].dtype == F64
    assert problem.inputs["index"].dtype == problem.params["count"].dtype == torch.long
    assert problem.inputs["c"].requires_grad is not detach
    assert problem.params["factor"].requires_grad is not detach
    kept = Problem(energy, inputs, (2,), None, detach=detach)
    assert kept.inputs["c"].dtype == kept.params["factor"].dtype == torch.float32
