"""Mixed precision: a network in bfloat16 or float16 feeding an energy solved in float64."""

import pytest
import torch

import lightning_energy as le


@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
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
        assert solution.x.dtype == dtype  # handed back in the network's precision
        assert bool(solution.converged.all())  # the solve ran in float64 whatever came in
        (solution.x.float() - 1).pow(2).sum().backward()
        grads[dtype] = net.weight.grad.float().clone()
    rel = (grads[low] - grads[torch.float32]).norm() / grads[torch.float32].norm()
    assert rel < 3e-2, rel
    net.float()
