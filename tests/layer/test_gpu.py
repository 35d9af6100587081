"""The layer on CUDA matches the CPU (skipped without a GPU)."""

import pytest
import torch

import lightning_energy as le
from tests.helpers import RobustLineFit, line_data


@pytest.mark.gpu
@pytest.mark.parametrize("hessian", ["exact", "gauss_newton", "cg"])
def test_cuda_matches_cpu(hessian):
    results = []
    for device in ("cpu", "cuda"):
        energy = RobustLineFit(10).double().to(device)
        t, y = (v.to(device) for v in line_data(8, 10))
        y.requires_grad_(True)
        layer = le.EnergyLayer(energy, le.LevenbergMarquardt(tol=1e-10),
                               le.ImplicitAdjoint(1e-3, hessian=hessian))
        sol = layer((t, y))
        grads = torch.autograd.grad(sol.x.pow(2).sum(), [energy.point_weights, y])
        assert sol.x.device.type == device
        results.append([sol.x.cpu()] + [g.cpu() for g in grads])
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-8)
