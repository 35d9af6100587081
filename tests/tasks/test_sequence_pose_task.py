"""The sequence pose task: gradients through the window solve, losses on scored frames only."""

from __future__ import annotations

import torch

import lightning_energy as le
from lightning_energy.datamodules import PoseSequenceDataModule
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.linalg import BlockArrow
from lightning_energy.metrics.functional import mpjpe
from lightning_energy.tasks import SequencePoseTask

F64 = torch.float64


def tiny_task(**kwargs) -> SequencePoseTask:
    # A wide smoothness kernel keeps Gauss–Newton fast to converge tightly (tests, not accuracy).
    return SequencePoseTask(
        MultiViewPoseEnergy(None, num_components=1, num_bases=3), smoothness_scale=30.0,
        frame_solver=le.LevenbergMarquardt(max_steps=30, tol=1e-6, dtype="float64"),
        solver=le.BlockArrowLevenbergMarquardt(max_steps=200, tol=1e-10, dtype="float64"),
        **kwargs).double()


def window_batch(**kwargs):
    dm = PoseSequenceDataModule(window=3, batch_size=2, synthetic_frames=24,
                                synthetic_sequence_length=6, **kwargs)
    dm.setup("fit")
    return next(iter(dm.train_dataloader())).to(dtype=F64)


def test_loss_gradient_matches_finite_differences():
    """λ = 0 through per-frame start, window solve, poses and MPJPE, in float64."""
    torch.manual_seed(0)
    task = tiny_task(adjoint=le.ImplicitAdjoint(0.0, linear_solver=BlockArrow()))
    batch = window_batch()
    params = [p for p in task.parameters() if p.requires_grad]
    solution = task(batch)
    assert bool(solution.converged.all())
    task.loss(solution, batch).backward()
    gen = torch.Generator().manual_seed(1)
    directions = [torch.randn(p.shape, generator=gen, dtype=F64) for p in params]
    analytic = sum(float((p.grad * d).sum()) for p, d in zip(params, directions, strict=True))

    def loss(step: float) -> float:
        with torch.no_grad():
            for p, d in zip(params, directions, strict=True):
                p.add_(step * d)
            value = float(task.loss(task(batch), batch))
            for p, d in zip(params, directions, strict=True):
                p.sub_(step * d)
        return value

    h = 1e-6
    numeric = (loss(h) - loss(-h)) / (2 * h)
    assert abs(analytic - numeric) <= 1e-5 * (1 + abs(numeric))
    # the sequence terms' own parameters receive gradient too
    energy = task.sequence_energy
    assert float(energy.log_smoothness.grad.abs()) > 0
    assert float(energy.log_body_prior.grad.abs()) > 0


def test_only_scored_frames_count():
    """Faulty variant: padded or unowned frames in the loss (``real`` instead of ``scored``)."""
    task = tiny_task()
    dm = PoseSequenceDataModule(window=4, eval_overlap=2, batch_size=8, synthetic_frames=40,
                                synthetic_sequence_length=3, test_frame_stride=2)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader())).to(dtype=F64)
    assert bool((batch.real & ~batch.scored).any())  # frames off the stride
    assert not bool(batch.real.all())  # 3-frame sequences padded to 4-frame windows
    solution = task(batch)
    keep = batch.scored.flatten() & solution.converged
    expected = mpjpe(solution.x[keep], batch.frames.joints3d[keep])
    assert torch.allclose(task.loss(solution, batch), expected)
    pred, target = task.metric_inputs(solution, batch)
    assert pred.shape[0] == int(batch.scored.sum()) == target.shape[0]
    assert task.batch_size(batch) == int(batch.scored.sum())
    errors = task.baseline_errors(solution, batch)
    assert errors["energy"].shape[0] == int(batch.scored.sum())


def test_separate_shape_rate_keeps_every_sequence_parameter():
    """Faulty variant: the per-frame task's groups, which miss the smoothness and body prior."""
    task = SequencePoseTask(MultiViewPoseEnergy(None, num_components=1), energy_lr=1e-2,
                            shape_lr=1e-3)
    groups = {g["name"]: g for g in task.energy_groups()}
    grouped = {id(p) for g in groups.values() for p in g["params"]}
    assert grouped == {id(p) for p in task.layer.parameters() if p.requires_grad}
    assert id(task.sequence_energy.log_smoothness) in {id(p) for p in groups["energy"]["params"]}
    assert groups["shape"]["lr"] == 1e-3
