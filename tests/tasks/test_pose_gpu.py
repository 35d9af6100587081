"""The pose task on CUDA gives the CPU's solutions and gradients (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.tasks.pose import MultiViewPoseTask


@pytest.mark.gpu
def test_pose_task_on_cuda_matches_cpu() -> None:
    batch = generate_synthetic_poses(12, seed=5).to_batch(dtype=torch.float64)
    results = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        energy = MultiViewPoseEnergy(None, num_components=2).double()
        task = MultiViewPoseTask(energy).to(device)
        solution = task(batch.to(device))
        loss = task.loss(solution, batch.to(device))
        grads = torch.autograd.grad(loss, [energy.mean, energy.bases, energy.log_weights])
        assert solution.x.device.type == device
        results.append([solution.x.cpu(), loss.cpu()] + [g.cpu() for g in grads])
    for cpu, cuda in zip(*results, strict=True):
        torch.testing.assert_close(cuda, cpu, rtol=1e-6, atol=1e-6)
