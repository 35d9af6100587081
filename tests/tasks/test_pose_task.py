"""The multi-view pose task trains on synthetic data; component selection and alternation."""

from __future__ import annotations

import pytest
import torch

import lightning_energy as le
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.metrics.functional import mpjpe
from lightning_energy.solvers.solution import Solution
from lightning_energy.tasks.pose import (
    MultiViewPoseTask,
    component_weights,
    select_components,
)


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


def test_chunk_size_auto_chunks_on_the_cpu_only() -> None:
    import pytest

    from lightning_energy.tasks.pose import CPU_CHUNK_SIZE

    task = _task()
    assert task.chunk_size == "auto"
    batch = generate_synthetic_poses(2, seed=1).to_batch(dtype=torch.float64)
    with torch.no_grad():
        task(batch)
    assert task.layer.chunk_size == CPU_CHUNK_SIZE
    assert _task(chunk_size=None).layer.chunk_size is None
    assert _task(chunk_size=7).layer.chunk_size == 7
    with pytest.raises(ValueError, match="chunk_size"):
        _task(chunk_size=0)


@torch.no_grad()
def _central_difference(task: MultiViewPoseTask, batch, param: torch.Tensor,
                        eps: float = 1e-5) -> float:
    """d loss / d ``param`` (a scalar parameter of the task's energy), every side re-solved."""
    sides = []
    for sign in (1.0, -1.0):
        param.add_(sign * eps)
        sides.append(float(task.loss(task(batch), batch)))
        param.sub_(sign * eps)
    return (sides[0] - sides[1]) / (2 * eps)


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
    for name, grad in zip(names, grads, strict=True):
        reference = _central_difference(tight, batch, params[name])
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


def test_component_weights_softmax_and_non_finite_energies() -> None:
    values = torch.tensor([[1.0, 2.0, 4.0], [float("nan"), 0.0, 1.0],
                           [float("inf"), float("nan"), float("inf")]], dtype=torch.float64)
    weights = component_weights(values, temperature=2.0)
    expected = torch.softmax(torch.tensor([-0.5, -1.0, -2.0], dtype=torch.float64), 0)
    torch.testing.assert_close(weights[0], expected)
    assert float(weights[1, 0]) == 0.0
    torch.testing.assert_close(weights[1, 1:], torch.softmax(torch.tensor(
        [0.0, -0.5], dtype=torch.float64), 0))
    torch.testing.assert_close(weights[2], torch.full((3,), 1 / 3, dtype=torch.float64))


def _soft_task(temperature: float | None, energy: MultiViewPoseEnergy | None = None,
               tol: float = 1e-9) -> MultiViewPoseTask:
    if energy is None:
        energy = MultiViewPoseEnergy(None, num_components=3, num_bases=4).double()
        with torch.no_grad():  # three different shape models
            energy.mean.add_(0.02 * torch.randn(energy.mean.shape, dtype=torch.float64,
                                                generator=torch.Generator().manual_seed(0)))
    solver = le.LevenbergMarquardt(max_steps=200, tol=tol, dtype="float64")
    return MultiViewPoseTask(energy, solver=solver, component_temperature=temperature)


def test_soft_components_average_the_component_poses() -> None:
    batch = generate_synthetic_poses(3, seed=5, noise_px=5.0).to_batch(dtype=torch.float64)
    hard, soft = _soft_task(None), _soft_task(2.0)
    soft.load_state_dict(hard.state_dict())
    with torch.no_grad():
        inputs = soft.energy_inputs(batch)
        poses, values = soft.component_poses(soft.layer(inputs), inputs)
        weights = torch.softmax(-(values - values.min(1, keepdim=True).values) / 2.0, dim=1)
        torch.testing.assert_close(soft(batch).x, (weights[..., None, None] * poses).sum(1))
        assert float(weights.max(1).values.min()) < 0.999  # really a mixture on these frames
        # a temperature far below the energy gaps is the argmin again
        soft.component_temperature = 1e-9
        torch.testing.assert_close(soft(batch).x, hard(batch).x)
    with pytest.raises(ValueError, match="component_temperature"):
        _soft_task(0.0)


def test_soft_component_loss_gradient_matches_central_differences() -> None:
    """The weights depend on θ through the energies at x*; the implicit adjoint (λ = 0 here)
    plus the direct path must give the derivative of the re-solved loss."""
    batch = generate_synthetic_poses(2, seed=6, noise_px=8.0).to_batch(dtype=torch.float64)
    task = _soft_task(1.0)
    task.layer.adjoint = le.ImplicitAdjoint(damping=0.0, hessian="exact")
    solution = task(batch)
    assert bool(solution.converged.all())
    params = dict(task.pose_energy.named_parameters())
    names = ["log_prior", "kernel.log_scale", "log_scale_offset"]
    grads = torch.autograd.grad(task.loss(solution, batch), [params[n] for n in names])
    tight = _soft_task(1.0, task.pose_energy, tol=1e-11)
    for name, grad in zip(names, grads, strict=True):
        reference = _central_difference(tight, batch, params[name])
        assert abs(float(grad) - reference) <= 1e-4 * abs(reference) + 1e-7, name


def test_a_step_scheduler_from_the_recipe_decays_every_optimizer_step() -> None:
    """Faulty variant caught: the scheduler stepped per epoch whatever ``scheduler_interval``."""
    from functools import partial

    import pytest

    energy = MultiViewPoseEnergy(None, num_components=1, learn=["mean"])
    scheduler = partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=150, eta_min=1e-4)
    task = MultiViewPoseTask(energy, energy_lr=1e-3, scheduler=scheduler,
                             scheduler_interval="step")
    config = task.configure_optimizers()
    assert config["lr_scheduler"]["interval"] == "step"
    assert isinstance(config["lr_scheduler"]["scheduler"],
                      torch.optim.lr_scheduler.CosineAnnealingLR)
    with pytest.raises(ValueError, match="scheduler_interval"):
        MultiViewPoseTask(energy, scheduler_interval="batch")  # type: ignore[arg-type]
