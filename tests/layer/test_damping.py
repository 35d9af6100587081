"""Near-singular and indefinite Hessians: the damped adjoint stays finite and bounded."""

import torch

import lightning_energy as le
from tests.helpers import DoubleWell


def near_singular_energy():
    energy = le.QuadraticEnergy(2, shift=0.0).double()
    with torch.no_grad():
        energy.factor.copy_(torch.diag(torch.tensor([1.0, 1e-9**0.5], dtype=torch.float64)))
        energy.b.zero_()
    return energy


def test_hessian_eigenvalue_is_tiny():
    eig = torch.linalg.eigvalsh(near_singular_energy().matrix().detach())
    assert abs(float(eig[0]) - 1e-9) < 1e-12


def test_damped_gradient_is_bounded_while_exact_one_explodes():
    energy = near_singular_energy()
    c = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(3, 2, dtype=torch.float64)
    norms = {}
    for damping in (0.0, 1e-2):
        sol = le.argmin(energy, c, solver=le.Newton(tol=1e-12),
                        adjoint=le.ImplicitAdjoint(damping))
        (g,) = torch.autograd.grad((sol.x * grad_out).sum(), c)
        assert bool(torch.isfinite(g).all())
        norms[damping] = g.norm(dim=-1)
    # ∂∇ₓE/∂c = −I, so ‖dL/dc‖ ≤ ‖dL/dx*‖ / λ per sample (DESIGN §2).
    assert bool((norms[1e-2] <= grad_out.norm(dim=-1) / 1e-2 + 1e-9).all())
    assert bool((norms[0.0] > 1e6 * norms[1e-2]).all())


def test_auto_damping_handles_an_indefinite_hessian():
    energy = DoubleWell().double()
    inputs = torch.zeros(4, 2, dtype=torch.float64, requires_grad=True)
    x0 = torch.zeros(4, 2, dtype=torch.float64)  # a saddle/maximum: H = diag(−4θ)
    # x = 0 is stationary (∇ₓE = 0) but a maximum: the solver reports it converged.
    layer = le.EnergyLayer(energy, le.Newton(max_steps=0), le.ImplicitAdjoint("auto"))
    sol = layer(inputs, x0)
    assert bool(sol.converged.all())
    gx = torch.randn(4, 2, dtype=torch.float64)
    grads = torch.autograd.grad((sol.x * gx).sum(), [energy.theta, inputs])
    assert all(bool(torch.isfinite(g).all()) for g in grads)
    # auto: λ = 4θ + 1e-3·4θ, so H + λI = 1e-3·4θ·I and v = g / 0.004.
    assert abs(float(sol.diagnostics["backward/damping"]) - 4.004) < 1e-9


def test_fixed_damping_on_indefinite_hessian_falls_back_and_records_it():
    energy = DoubleWell().double()
    inputs = torch.zeros(2, 1, dtype=torch.float64, requires_grad=True)
    layer = le.EnergyLayer(energy, le.Newton(max_steps=0), le.ImplicitAdjoint(1e-2))
    sol = layer(inputs, torch.zeros(2, 1, dtype=torch.float64))
    (g,) = torch.autograd.grad(sol.x.sum(), inputs)
    assert bool(torch.isfinite(g).all())
    assert int(sol.diagnostics["backward/fallbacks"]) == 2
    assert int(sol.diagnostics["backward/failed"]) == 0
    assert float(sol.diagnostics["backward/damping"]) > 4.0


def test_float32_near_singular_cholesky_is_retried_not_silently_wrong():
    from lightning_energy.linalg.dense import damped_cholesky_solve

    gen = torch.Generator().manual_seed(0)
    j = torch.randn(4, 152, 20, generator=gen, dtype=torch.float64)
    j[..., -1] = j[..., -2] * (1 + 1e-9)  # rank-deficient Gauss–Newton matrix
    h = (j.transpose(1, 2) @ j).float()
    rhs = torch.randn(4, 20, generator=gen)
    # float32 Cholesky "succeeds" on some samples and fails on others here; which ones depends
    # on the CPU's BLAS kernels ([0, 20, 20, 0] on one machine, [0, 20, 0, 20] on another).
    plain = torch.linalg.cholesky_ex(h + 1e-6 * torch.eye(20))[1]
    assert bool((plain == 0).any()), plain.tolist()
    assert bool((plain > 0).any()), plain.tolist()
    z, info = damped_cholesky_solve(h, rhs, 1e-6)
    exact = torch.linalg.solve(h.double() + 1e-6 * torch.eye(20, dtype=torch.float64),
                               rhs.double()[..., None])[..., 0]
    error = (z.double() - exact).norm(dim=-1) / exact.norm(dim=-1)
    assert info.retried.tolist() == [True, True, True, True]
    assert not bool(info.failed.any())
    assert float(error.max()) < 1e-3
