"""The multi-view pose task trains on synthetic data; component selection and alternation."""

from __future__ import annotations

import torch

from lightning_energy.data.pose_synthetic import generate_synthetic_poses
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.solvers.solution import Solution
from lightning_energy.tasks.pose import MultiViewPoseTask, select_components


def _task(**kwargs) -> MultiViewPoseTask:
    energy = MultiViewPoseEnergy(None, num_components=1, learn=["mean", "weights"]).double()
    with torch.no_grad():  # a biased mean: something to learn
        energy.mean[:, 0].add_(torch.tensor([0.0, 0.04, 0.0], dtype=torch.float64))
        energy.mean[:, 10].add_(torch.tensor([0.05, 0.0, 0.0], dtype=torch.float64))
    return MultiViewPoseTask(energy, **kwargs)


def test_training_reduces_the_mpjpe_loss() -> None:
    task = _task()
    batch = generate_synthetic_poses(16, seed=3).to_batch(dtype=torch.float64)
    optimizer = torch.optim.Adam(task.parameters(), lr=4e-3)
    losses = []
    for _ in range(8):
        loss = task.loss(task(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_forward_returns_world_poses_in_mm() -> None:
    task = _task()
    batch = generate_synthetic_poses(4, seed=1, noise_px=0.0).to_batch()
    with torch.no_grad():
        solution = task(batch)
    assert solution.x.shape == (4, 17, 3)
    # biased model, clean data: still within ~10 cm of the truth in absolute coordinates
    assert (solution.x - batch.joints3d).norm(dim=-1).mean() < 100.0


def test_select_components_keeps_the_lowest_energy() -> None:
    n = 4
    solution = Solution(
        x=torch.arange(6.0)[:, None].expand(6, n),
        value=torch.tensor([3.0, 1.0, 2.0, 0.5, 9.0, 1.0]),
        status=torch.zeros(6, dtype=torch.long), converged=torch.ones(6, dtype=torch.bool),
        num_steps=torch.zeros(6, dtype=torch.long), grad_norm=torch.zeros(6),
        damping=torch.zeros(6),
    )
    best, picked = select_components(solution, 3)
    assert best.tolist() == [1, 0]
    assert picked.x[:, 0].tolist() == [1.0, 3.0]


def test_alternate_updates_only_the_active_group() -> None:
    task = _task(alternate=[["mean"], ["log_weights"]])
    weights = task.pose_energy.log_weights.detach().clone()
    batch = generate_synthetic_poses(8, seed=2).to_batch(dtype=torch.float64)
    optimizer = torch.optim.Adam(task.parameters(), lr=1e-2)
    loss = task.loss(task(batch), batch)
    loss.backward()
    task.on_before_optimizer_step(optimizer)  # global_step 0: the "mean" group
    optimizer.step()
    assert torch.equal(task.pose_energy.log_weights.detach(), weights)
    assert task.pose_energy.mean.grad is not None


def test_unknown_alternate_name_raises() -> None:
    import pytest

    with pytest.raises(ValueError, match="alternate"):
        _task(alternate=[["nonexistent"]])
