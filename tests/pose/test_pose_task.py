"""The multi-view pose task trains on synthetic data; component selection and alternation."""

from __future__ import annotations

import torch

import lightning_energy as le
from lightning_energy.data.pose_synthetic import generate_synthetic_poses
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.metrics.functional import mpjpe
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


def test_shape_model_has_its_own_learning_rate() -> None:
    energy = MultiViewPoseEnergy(None, num_components=1, learn=["mean", "bases", "weights"])
    task = MultiViewPoseTask(energy, energy_lr=1e-2, shape_lr=2e-3)
    optimizer = task.configure_optimizers()
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["shape"]["lr"] == 2e-3
    assert groups["energy"]["lr"] == 1e-2
    assert {id(p) for p in groups["shape"]["params"]} == {id(energy.mean), id(energy.bases)}
    assert [id(p) for p in groups["energy"]["params"]] == [id(energy.log_weights)]
    default = MultiViewPoseTask(MultiViewPoseEnergy(None, num_components=1), energy_lr=5e-3)
    (group,) = default.configure_optimizers().param_groups  # one group: old checkpoints resume
    assert group["lr"] == 5e-3
    assert group["name"] == "energy"


def test_bad_learning_rates_are_named() -> None:
    import pytest

    with pytest.raises(ValueError, match=r"`shape_lr` to be a float > 0, got -0\.1"):
        MultiViewPoseTask(MultiViewPoseEnergy(None, num_components=1), shape_lr=-0.1)
    with pytest.raises(ValueError, match=r"`energy_lr` to be a float > 0, got 0\."):
        MultiViewPoseTask(MultiViewPoseEnergy(None, num_components=1), energy_lr=0)


def test_unknown_alternate_name_raises() -> None:
    import pytest

    with pytest.raises(ValueError, match="alternate"):
        _task(alternate=[["nonexistent"]])


def test_default_adjoint_gives_the_loss_gradient_of_a_robust_fit() -> None:
    """Noisy, swapped detections put residuals in the kernel's robust range, where a
    Gauss–Newton Hessian is biased; the task's default (exact-Hessian) adjoint must still match
    central differences of the loss through re-solved poses."""
    energy = MultiViewPoseEnergy(None, num_components=1).double()
    # the default adjoint, with a solver that converges on every frame (no frame left out)
    task = MultiViewPoseTask(energy, solver=le.LevenbergMarquardt(max_steps=200, tol=1e-9,
                                                                   dtype="float64"))
    batch = generate_synthetic_poses(3, seed=4, noise_px=12.0, swap_prob=0.3).to_batch(
        dtype=torch.float64)
    solution = task(batch)
    assert bool(solution.converged.all())
    loss = task.loss(solution, batch)
    names = ["log_scale_offset", "log_prior", "kernel.log_scale"]
    params = dict(energy.named_parameters())
    grads = torch.autograd.grad(loss, [params[n] for n in names])
    tight = MultiViewPoseTask(energy, solver=le.LevenbergMarquardt(max_steps=300, tol=1e-11,
                                                                    dtype="float64"))
    eps = 1e-5
    with torch.no_grad():
        for name, grad in zip(names, grads, strict=True):
            sides = []
            for sign in (1.0, -1.0):
                params[name].add_(sign * eps)
                sides.append(float(tight.loss(tight(batch), batch)))
                params[name].sub_(sign * eps)
            reference = (sides[0] - sides[1]) / (2 * eps)
            # the damping (λ = 1e-2) biases the gradient slightly; 2% leaves room for it only
            assert abs(float(grad) - reference) <= 0.02 * abs(reference) + 1e-6, name


def test_nonconverged_frames_are_left_out_of_the_loss() -> None:
    energy = MultiViewPoseEnergy(None, num_components=1).double()
    batch = generate_synthetic_poses(6, seed=4, noise_px=12.0, swap_prob=0.3).to_batch(
        dtype=torch.float64)
    task = MultiViewPoseTask(energy, solver=le.LevenbergMarquardt(max_steps=25, tol=1e-4,
                                                                   dtype="float64"))
    solution = task(batch)
    keep = solution.converged
    assert 0 < int(keep.sum()) < len(batch)  # a mixed batch
    expected = mpjpe(solution.x[keep], batch.joints3d[keep])
    torch.testing.assert_close(task.loss(solution, batch), expected)
    stuck = MultiViewPoseTask(energy, solver=le.LevenbergMarquardt(max_steps=1, tol=1e-12,
                                                                    dtype="float64"))
    loss = stuck.loss(stuck(batch), batch)
    (grad,) = torch.autograd.grad(loss, energy.mean)
    assert float(loss) == 0.0
    assert float(grad.abs().max()) == 0.0
