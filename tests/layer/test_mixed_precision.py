"""Mixed precision: a network in bfloat16 or float16 (a half module or autocast) feeding an
energy solved in float32 or float64 (lightning_energy.solvers.precision)."""

import pytest
import torch

import lightning_energy as le
from lightning_energy.bench.problems import PoseLikeEnergy

HALF = [torch.bfloat16, torch.float16]


@pytest.mark.parametrize("low", HALF)
def test_low_precision_network_with_a_float64_solve_matches_the_float32_gradient(low):
    """Faulty variants caught: solving in the network's precision when the solver asks for
    float64 (the tolerance is then out of reach and samples are masked), or gradients that do
    not reach a low-precision network."""
    torch.manual_seed(0)
    energy = le.QuadraticEnergy(4)
    net = torch.nn.Linear(6, 4)
    features = torch.randn(16, 6)
    layer = le.EnergyLayer(energy, le.Newton(tol=1e-10, dtype="float64"), le.ImplicitAdjoint(1e-3))
    grads = {}
    for dtype in (torch.float32, low):
        net.zero_grad()
        inputs = net.to(dtype)(features.to(dtype))
        solution = layer(inputs)
        assert solution.x.dtype == torch.float32  # never rounded to half precision
        assert bool(solution.converged.all())  # the solve ran in float64 whatever came in
        (solution.x - 1).pow(2).sum().backward()
        assert net.weight.grad.dtype == dtype
        grads[dtype] = net.weight.grad.float().clone()
    rel = (grads[low] - grads[torch.float32]).norm() / grads[torch.float32].norm()
    assert rel < 3e-2, rel
    net.float()


def _pose_step(layer, net, energy, observations, autocast_dtype, backward_inside):
    """One training step of a network feeding the pose-shaped energy; returns the solution and
    the network's weight gradient (float32)."""
    net.zero_grad()
    energy.zero_grad()
    enabled = autocast_dtype is not None
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=enabled):
        solution = layer(net(observations.flatten(1)).unflatten(1, observations.shape[1:]))
        loss = solution.x.pow(2).mean()
        if backward_inside:
            loss.backward()
    if not backward_inside:
        loss.backward()
    return solution, net.weight.grad.float().clone()


@pytest.mark.parametrize("solve_dtype", ["float32", None])
@pytest.mark.parametrize("low", HALF)
def test_a_float32_solve_under_autocast_converges_and_matches_the_float32_gradient(low,
                                                                                  solve_dtype):
    """Faulty variants caught (each measured to fail): the solve left under autocast (its matrix
    products in half precision: no sample of this pose-shaped least-squares energy reaches
    tol = 1e-4, all are masked and the gradient is zero), a half-precision solve for a solver
    without a dtype, or the backward pass's Hessian and products in half precision when
    ``backward()`` is called inside the autocast block."""
    torch.manual_seed(0)
    energy = PoseLikeEnergy()
    observations = energy.sample_inputs(32)
    width = observations[0].numel()
    net = torch.nn.Linear(width, width)
    with torch.no_grad():  # near the identity: the energy sees nearly the observations
        net.weight.copy_(torch.eye(width) + 1e-3 * torch.randn(width, width))
        net.bias.zero_()
    solver = le.LevenbergMarquardt(max_steps=50, tol=1e-4, dtype=solve_dtype)
    layer = le.EnergyLayer(energy, solver, le.ImplicitAdjoint(1e-2))
    reference, grad32 = _pose_step(layer, net, energy, observations, None, False)
    assert bool(reference.converged.all())
    grads = {}
    for inside in (False, True):
        solution, grads[inside] = _pose_step(layer, net, energy, observations, low, inside)
        assert solution.x.dtype == torch.float32
        assert bool(solution.converged.all()), solution.status_counts()
        assert int(solution.diagnostics["masked"]) == 0
        x_rel = float(((solution.x - reference.x).norm() / reference.x.norm()).detach())
        assert x_rel < 2e-2, (inside, x_rel)
    # What remains is the network's own rounding of the observations under autocast (0.6% for
    # bfloat16); a backward pass in half precision inside the block doubled it.
    rel = float((grads[False] - grad32).norm() / grad32.norm())
    assert rel < 2e-2, rel
    torch.testing.assert_close(grads[True], grads[False], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("low", HALF)
def test_a_solver_without_dtype_solves_half_precision_inputs_in_float32(low):
    """Faulty variant caught: the solve running in the inputs' half precision, where the
    tolerance is out of reach (every sample stalls and is masked)."""
    torch.manual_seed(0)
    c = torch.randn(8, 3).to(low).requires_grad_()
    layer = le.EnergyLayer(le.QuadraticEnergy(3), le.Newton(tol=1e-6), le.ImplicitAdjoint(0.0))
    solution = layer(c)
    assert solution.x.dtype == torch.float32
    assert solution.value.dtype == torch.float32
    assert bool(solution.converged.all())
    solution.x.sum().backward()
    assert c.grad is not None
    assert c.grad.dtype == low
    assert torch.isfinite(c.grad.float()).all()
    assert float(c.grad.float().abs().sum()) > 0


def test_an_unrolled_solve_under_autocast_records_float32_steps():
    """Faulty variant caught: the recorded steps in half precision (the solve stalls)."""
    torch.manual_seed(0)
    energy = PoseLikeEnergy()
    observations = energy.sample_inputs(8).requires_grad_()
    solver = le.LevenbergMarquardt(max_steps=30, tol=1e-4, dtype="float32")
    layer = le.EnergyLayer(energy, solver, le.UnrolledAdjoint())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        solution = layer(observations)
    assert bool(solution.converged.all()), solution.status_counts()
    solution.x.pow(2).mean().backward()
    plain = le.EnergyLayer(energy, solver, le.UnrolledAdjoint())(observations.detach())
    torch.testing.assert_close(solution.x, plain.x)
    assert observations.grad is not None
    assert torch.isfinite(observations.grad).all()


class _DotEnergy(le.Energy):
    """E(x) = ½‖x‖² − Σ_i x_i c_i through a matrix product, which refuses mixed dtypes."""

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.pow(2).sum(-1) - torch.einsum("bi,bi->b", x, c)

    def initial_solution(self, c: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(c)


@pytest.mark.parametrize("adjoint", [le.ImplicitAdjoint(0.0), le.UnrolledAdjoint(),
                                     le.TruncatedAdjoint(1)], ids=lambda a: type(a).__name__)
def test_every_adjoint_builds_its_problem_in_the_solve_dtype(adjoint):
    """Faulty variant caught (measured): an adjoint building its Problem in the solver's dtype
    (None here), which leaves the bfloat16 inputs uncast against the float32 iterate: the matrix
    product raises "expected scalar type Float but found BFloat16"."""
    c = torch.randn(4, 3).to(torch.bfloat16).requires_grad_()
    layer = le.EnergyLayer(_DotEnergy(), le.Newton(tol=1e-6), adjoint)
    solution = layer(c, torch.zeros(4, 3))
    assert bool(solution.converged.all())
    torch.testing.assert_close(solution.x, c.detach().float())  # x* = c
    solution.x.sum().backward()
    torch.testing.assert_close(c.grad.float(), torch.ones(4, 3))  # dx*/dc = I
