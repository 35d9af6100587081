"""Every option of ImplicitAdjoint and of its linear solvers does what it says, in float64."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import lightning_energy as le
from lightning_energy.linalg import Banded, Cholesky, ConjugateGradient
from lightning_energy.linalg.solvers import auto_damping, spectral_radius
from tests.helpers import CoupledLogCosh


class Dense:
    """A :class:`~lightning_energy.linalg.Curvature` given as matrices (B, n, n)."""

    def __init__(self, matrices: Tensor) -> None:
        self.matrices = matrices

    def dense(self) -> Tensor:
        return self.matrices

    def matvec(self):
        return lambda v: torch.einsum("bij,bj->bi", self.matrices, v)


def _spd(batch: int, n: int, seed: int = 0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, n, n, generator=gen, dtype=torch.float64)
    return a @ a.transpose(1, 2) + 0.5 * torch.eye(n, dtype=torch.float64)


def _solve(matrices: Tensor, rhs: Tensor, damping: Tensor | float) -> Tensor:
    lam = torch.as_tensor(damping, dtype=matrices.dtype).reshape(-1, 1, 1)
    eye = torch.eye(matrices.shape[-1], dtype=matrices.dtype)
    return torch.linalg.solve(matrices + lam * eye, rhs[..., None])[..., 0]


@pytest.mark.parametrize("linear_solver", [None, "cg"])
@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_newton_step_returns_one_damped_newton_step_from_an_unconverged_start(damping,
                                                                             linear_solver):
    """Faulty variant: `newton_step` adds +(H + λI)⁻¹∇E (sign flipped) or drops λ."""
    energy = CoupledLogCosh(3, 4).double()
    c = torch.randn(2, 4, dtype=torch.float64)
    x0 = torch.randn(2, 3, dtype=torch.float64)
    solver = ConjugateGradient(rtol=1e-14) if linear_solver else None
    adjoint = le.ImplicitAdjoint(damping, linear_solver=solver, newton_step=True)
    sol = le.argmin(energy, c, solver=le.Newton(max_steps=0), adjoint=adjoint, x0=x0)
    for b in range(2):
        def single(z: Tensor, b: int = b) -> Tensor:
            return energy(z[None], c[b : b + 1])[0]

        grad = torch.autograd.functional.jacobian(single, x0[b])
        hess = torch.autograd.functional.hessian(single, x0[b])
        step = torch.linalg.solve(hess + damping * torch.eye(3, dtype=torch.float64), grad)
        assert torch.allclose(sol.x[b], x0[b] - step, atol=1e-10)
    plain = le.argmin(energy, c, solver=le.Newton(max_steps=0),
                      adjoint=le.ImplicitAdjoint(damping), x0=x0)
    assert torch.equal(plain.x, x0)  # without newton_step the value is the solver's


def test_auto_damping_rule_and_its_margin():
    """Faulty variant: "auto" ignores `auto_margin`, or takes the second-smallest eigenvalue."""
    hess = torch.diag_embed(torch.tensor([[-2.0, 1.0, 4.0], [1.0, 3.0, 5.0]],
                                         dtype=torch.float64))
    for margin in (1e-3, 0.1):
        lam = auto_damping(hess, margin)
        assert torch.allclose(lam, torch.tensor([2 + 4 * margin, 5 * margin],
                                                dtype=torch.float64))
    energy = CoupledLogCosh(3, 4).double()
    c = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    for margin in (1e-3, 0.5):
        sol = le.argmin(energy, c, solver=le.Newton(tol=1e-12),
                        adjoint=le.ImplicitAdjoint("auto", auto_margin=margin))
        sol.x.sum().backward()
        hess = le.solvers.Problem(energy, c.detach(), (3,)).hessian(sol.x.detach())
        expected = auto_damping(hess, margin).mean()
        assert float(sol.diagnostics["backward/damping"]) == pytest.approx(float(expected))


def test_spectral_radius_by_power_iteration():
    """Faulty variant: v is not renormalised every step (‖H v‖ of a shrinking v)."""
    hess = torch.diag_embed(torch.tensor([[-6.0, 1.0, 2.0], [0.5, 3.0, -1.0]],
                                         dtype=torch.float64))
    radius = spectral_radius(Dense(hess).matvec(), torch.zeros(2, 3, dtype=torch.float64),
                             iterations=200)
    assert torch.allclose(radius, torch.tensor([6.0, 3.0], dtype=torch.float64), rtol=1e-6)
    small = spectral_radius(Dense(hess / 20).matvec(), torch.zeros(2, 3, dtype=torch.float64),
                            iterations=200)  # |μ| < 1: v shrinks unless renormalised each step
    assert torch.allclose(small, torch.tensor([0.3, 0.15], dtype=torch.float64), rtol=1e-6)


def test_conjugate_gradient_auto_damping_raises_lambda_past_negative_curvature():
    """Faulty variant: CG's "auto" keeps the first λ (or never retries) on an indefinite H."""
    hess = torch.diag_embed(torch.tensor([[-2.0, 1.0, 4.0], [1.0, 3.0, 5.0]],
                                         dtype=torch.float64))
    rhs = torch.ones(2, 3, dtype=torch.float64)
    v, stats = ConjugateGradient(rtol=1e-12).solve(Dense(hess), rhs, "auto", 1e-2)
    assert int(stats["fallbacks"]) == 1  # sample 0 met negative curvature
    assert int(stats["failed"]) == 0
    lam = (rhs - torch.einsum("bij,bj->bi", hess, v)) / v  # (H + λI) v = rhs, λ per sample
    assert torch.allclose(lam[1], torch.full((3,), 0.05, dtype=torch.float64), rtol=1e-4)
    assert bool((lam[0] > 2).all())  # past −μ_min = 2
    # sample 0 starts at λ = 1e-2 · 4 and is raised tenfold twice: 0.04 → 0.4 → 4
    assert torch.allclose(lam[0], torch.full((3,), 4.0, dtype=torch.float64), rtol=1e-4)


def test_conjugate_gradient_fixed_damping_is_never_raised():
    """Faulty variant: with a fixed λ, negative curvature raises λ as "auto" does."""
    hess = torch.diag_embed(torch.tensor([[-2.0, 1.0, 4.0]], dtype=torch.float64))
    _, stats = ConjugateGradient().solve(Dense(hess), torch.ones(1, 3, dtype=torch.float64),
                                         0.5)
    assert (int(stats["failed"]), int(stats["fallbacks"])) == (1, 0)
    assert float(stats["damping"]) == 0.5


def test_conjugate_gradient_fixed_damping_iteration_cap_and_tolerance():
    """Faulty variant: `max_iter` or `rtol` not handed to the CG loop."""
    hess, rhs = _spd(2, 6), torch.randn(2, 6, dtype=torch.float64)
    exact = _solve(hess, rhs, 0.1)
    v, stats = ConjugateGradient(rtol=1e-13).solve(Dense(hess), rhs, 0.1)
    assert torch.allclose(v, exact, rtol=1e-9, atol=1e-12)
    assert float(stats["cg_iterations"]) <= 6
    capped, stats = ConjugateGradient(max_iter=2).solve(Dense(hess), rhs, 0.1)
    assert float(stats["cg_iterations"]) == 2
    assert float((capped - exact).norm()) > 1e-3
    loose, _ = ConjugateGradient(rtol=0.5).solve(Dense(hess), rhs, 0.1)
    error = float((loose - exact).norm() / exact.norm())
    assert error > 1e-8
    assert ConjugateGradient(max_iter=1).max_iter == 1
    with pytest.raises(ValueError, match="max_iter"):
        ConjugateGradient(max_iter=0)
    with pytest.raises(ValueError, match="rtol"):
        ConjugateGradient(rtol=0.0)


def test_cholesky_retries_with_more_damping_up_to_max_retries():
    """Faulty variant: `max_retries` not handed to the fallback (always 8, or none)."""
    hess = torch.diag_embed(torch.tensor([[-1e-3, 1.0]], dtype=torch.float64))
    rhs = torch.ones(1, 2, dtype=torch.float64)
    _, none = Cholesky(max_retries=0).solve(Dense(hess), rhs, 1e-6)
    assert int(none["failed"]) == 1
    v, some = Cholesky(max_retries=8).solve(Dense(hess), rhs, 1e-6)
    assert int(some["failed"]) == 0
    lam = float(some["damping"])
    assert 1e-3 < lam <= 1e-6 * 10**8 + 1e-9  # raised tenfold until H + λI factorised
    assert torch.allclose(v, _solve(hess, rhs, lam))
    with pytest.raises(ValueError, match="max_retries"):
        Cholesky(max_retries=-1)


def test_cholesky_adds_exactly_the_given_damping():
    """Faulty variant: the fixed λ is dropped, doubled, or added to the right-hand side."""
    hess, rhs = _spd(3, 4), torch.randn(3, 4, dtype=torch.float64)
    for lam in (0.0, 0.7):
        v, stats = Cholesky().solve(Dense(hess), rhs, lam)
        assert torch.allclose(v, _solve(hess, rhs, lam))
        assert float(stats["damping"]) == pytest.approx(lam)
        assert int(stats["fallbacks"]) == 0


@pytest.mark.parametrize("dense_below", [0, 1000])
def test_banded_solver_either_path_solves_the_damped_blocks(dense_below):
    """Faulty variant: `Banded` unshuffles the frame-major layout wrongly on one path."""
    from lightning_energy.linalg.banded import dense_from_bands

    gen = torch.Generator().manual_seed(0)
    b, c, t = 2, 3, 7
    bands = 0.1 * torch.randn(b, c, 3, t, generator=gen, dtype=torch.float64)
    bands[:, :, 0] += 2.0
    rhs = torch.randn(b, t * c, generator=gen, dtype=torch.float64)

    class Bands:
        def bands(self) -> Tensor:
            return bands

    v, stats = Banded(dense_below).solve(Bands(), rhs, 0.25)
    blocks = dense_from_bands(bands)  # (B, C, T, T)
    per_block = rhs.reshape(b, t, c).permute(0, 2, 1)
    expected = _solve(blocks.reshape(-1, t, t), per_block.reshape(-1, t), 0.25)
    expected = expected.reshape(b, c, t).permute(0, 2, 1).reshape(b, t * c)
    assert torch.allclose(v, expected, atol=1e-12)
    assert float(stats["damping"]) == 0.25
    with pytest.raises(ValueError, match="'auto'"):
        Banded().solve(Bands(), rhs, "auto")
    with pytest.raises(ValueError, match="dense_below"):
        Banded(-1)


def test_constructor_checks():
    """Faulty variant: a misconfiguration is accepted and fails (or misbehaves) much later."""
    with pytest.raises(ValueError, match="'auto'"):
        le.ImplicitAdjoint("auto", linear_solver=Banded())
    with pytest.raises(ValueError, match="gauss_newton"):
        le.ImplicitAdjoint(hessian="gauss_newton", linear_solver=ConjugateGradient())
    with pytest.raises(ValueError, match="cg"):
        le.ImplicitAdjoint(hessian="cg", linear_solver=Cholesky())
    cg = le.ImplicitAdjoint(hessian="cg")
    assert (cg.hessian, type(cg.linear_solver)) == ("exact", ConjugateGradient)
    assert type(le.ImplicitAdjoint().linear_solver) is Cholesky
    with pytest.raises(le.IncompatibleSolverError, match="hessian_bands"):
        le.EnergyLayer(CoupledLogCosh(2, 2), le.Newton(),
                       le.ImplicitAdjoint(linear_solver=Banded()))


def test_gauss_newton_hessian_is_used_when_the_solver_keeps_another_curvature():
    """Faulty variant: the adjoint forms the exact Hessian whatever `hessian` says."""
    from tests.helpers import RobustLineFit, line_data

    energy = RobustLineFit(10, le.robust.Cauchy(0.3)).double()
    t, y = line_data(3, 10)
    y = y.clone().requires_grad_(True)
    grads = {}
    for name, solver, hessian in (("lm", le.LevenbergMarquardt(tol=1e-12), "gauss_newton"),
                                  ("newton", le.Newton(tol=1e-12), "gauss_newton"),
                                  ("exact", le.Newton(tol=1e-12), "exact")):
        sol = le.argmin(energy, (t, y), solver=solver,
                        adjoint=le.ImplicitAdjoint(1e-6, hessian=hessian))
        assert bool(sol.converged.all())
        (grads[name],) = torch.autograd.grad(sol.x.sum(), y)
    # LM hands over its own JᵀWJ; Newton keeps ∇²E, so the adjoint must form JᵀWJ itself.
    assert torch.allclose(grads["newton"], grads["lm"], rtol=1e-6, atol=1e-10)
    assert not torch.allclose(grads["newton"], grads["exact"], rtol=1e-3)


def test_parameter_that_does_not_move_the_minimum_gets_no_gradient():
    """Faulty variant: the backward pass requires every parameter to reach ∇ₓE (it raises)."""

    class Shifted(le.Energy):
        def __init__(self) -> None:
            super().__init__()
            self.offset = torch.nn.Parameter(torch.tensor(3.0, dtype=torch.float64))

        def forward(self, x: Tensor, inputs: Tensor) -> Tensor:
            return 0.5 * ((x - inputs) ** 2).sum(-1) + self.offset  # E shifts, x* does not

    energy = Shifted()
    c = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    sol = le.argmin(energy, c, solver=le.Newton(tol=1e-12), x0=torch.zeros(2, 3,
                                                                          dtype=torch.float64))
    sol.x.sum().backward()
    assert energy.offset.grad is None
    assert torch.allclose(c.grad, torch.full_like(c, 1 / 1.01))  # (H + λI)⁻¹ H, λ = 1e-2


@pytest.mark.parametrize("newton_step", [False, True])
def test_returned_solution_holds_no_curvature(newton_step):
    """Faulty variant: the (B, n, n) curvature stays on the returned Solution (held twice)."""
    energy = CoupledLogCosh(3, 4).double()
    c = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    sol = le.argmin(energy, c, solver=le.Newton(tol=1e-10),
                    adjoint=le.ImplicitAdjoint(newton_step=newton_step))
    assert sol.curvature is None
    sol.x.sum().backward()
    assert sol.curvature is None


def test_reprs_name_the_linear_solver_and_its_settings():
    """Faulty variant: a repr names another class (error messages would mislead)."""
    assert repr(Cholesky()) == "Cholesky()"
    assert repr(ConjugateGradient(5, 1e-4)) == "ConjugateGradient(max_iter=5, rtol=0.0001)"
    assert repr(Banded(7)) == "Banded(dense_below=7)"
    assert repr(le.ImplicitAdjoint(0.5)) == ("ImplicitAdjoint(damping=0.5, hessian='exact', "
                                             "linear_solver=Cholesky())")


def test_conjugate_gradient_auto_raises_lambda_at_most_eight_times_and_reports_the_one_used():
    """Faulty variants: another number of tenfold raises, or the λ reported being one raise
    past the λ the returned v was solved with."""
    hess = torch.diag_embed(torch.tensor([[1.0, -100.0]], dtype=torch.float64))
    rhs = torch.ones(1, 2, dtype=torch.float64)
    # λ starts at margin · 100 (the spectral radius); H + λI is indefinite while λ < 100.
    v, stats = ConjugateGradient(rtol=1e-12).solve(Dense(hess), rhs, "auto", 5e-8)
    lam = float(stats["damping"])  # 5e-6 raised eight times: about 500
    assert (int(stats["failed"]), int(stats["fallbacks"])) == (0, 1)
    assert lam == pytest.approx(500.0, rel=1e-6)
    torch.testing.assert_close(v, _solve(hess, rhs, lam))
    v, stats = ConjugateGradient(rtol=1e-12).solve(Dense(hess), rhs, "auto", 5e-9)
    assert (int(stats["failed"]), int(stats["fallbacks"])) == (1, 1)  # 50 after eight raises
    assert float(stats["damping"]) == pytest.approx(50.0, rel=1e-6)


def test_conjugate_gradient_auto_defaults_and_a_zero_curvature():
    """Faulty variants: another default ``auto_margin``; a λ of 0 raised to −eps (or 2 eps)
    instead of eps, the growth term a zero λ needs."""
    hess = torch.diag_embed(torch.tensor([[1.0, 4.0]], dtype=torch.float64))
    _, stats = ConjugateGradient(rtol=1e-12).solve(Dense(hess), torch.ones(1, 2,
                                                                           dtype=torch.float64),
                                                   "auto")
    assert float(stats["damping"]) == pytest.approx(1e-3 * 4.0, rel=1e-6)
    zero = torch.zeros(1, 2, 2, dtype=torch.float64)  # pᵀHp = 0: negative curvature at λ = 0
    v, stats = ConjugateGradient().solve(Dense(zero), torch.ones(1, 2, dtype=torch.float64),
                                         "auto")
    eps = torch.finfo(torch.float64).eps
    assert (int(stats["failed"]), int(stats["fallbacks"])) == (0, 1)
    assert float(stats["damping"]) == eps
    torch.testing.assert_close(v, torch.full((1, 2), 1 / eps, dtype=torch.float64))


def test_newtons_final_dense_hessian_is_reused_by_the_backward(monkeypatch):
    """Faulty variant: the solver's Hessian at x* dropped and rebuilt by the backward pass."""
    from lightning_energy.solvers.problem import Problem

    energy = CoupledLogCosh(3, 4).double()
    c = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    x = le.argmin(energy, c, solver=le.Newton(tol=1e-11), adjoint=le.ImplicitAdjoint(1e-2)).x
    calls = []
    original = Problem.hessian

    def counted(self, x):
        calls.append(1)
        return original(self, x)

    monkeypatch.setattr(Problem, "hessian", counted)
    (grad,) = torch.autograd.grad(x.sum(), c)
    assert not calls
    assert bool(torch.isfinite(grad).all())
