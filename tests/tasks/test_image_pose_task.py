"""Pose from pixels: the detector → energy chain, its gradient, stages and checkpoints."""

import dataclasses

import pytest
import torch

import lightning_energy as le
from lightning_energy.datamodules import PoseImageDataModule
from lightning_energy.datasets.pose_render import RenderConfig
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.errors import CheckpointNotFoundError
from lightning_energy.networks import KeypointDetector
from lightning_energy.tasks import ImagePoseTask, KeypointTask


@pytest.fixture(autouse=True)
def one_thread():
    """Rendering and tiny convolutions are many small ops: threads only compete on 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch(frames: int = 2, size: int = 32, seed: int = 0):
    data = PoseImageDataModule(root=None, batch_size=frames, synthetic_frames=4 * frames,
                               image_size=size, render=RenderConfig(image_size=size), seed=seed)
    data.setup("validate")
    return next(iter(data.val_dataloader()))


def _tiny_detector() -> KeypointDetector:
    return KeypointDetector(stacks=1, depth=1, channels=4, stride=2)


def _task(detector, **kwargs) -> ImagePoseTask:
    energy = MultiViewPoseEnergy(None, num_components=1, num_bases=3)
    solver = le.LevenbergMarquardt(max_steps=200, tol=1e-10, dtype="float64")
    return ImagePoseTask(detector, energy=energy, solver=solver, chunk_size=None, **kwargs)


def test_gradient_through_pixels_detector_and_argmin_matches_finite_differences():
    """Catches: keypoints or confidences cut from the graph, a wrong crop → image map in the
    backward, or an adjoint that does not reach the inputs: pixels → hourglass → soft-argmax →
    energy → x* → MPJPE, against central differences of the re-solved chain, float64."""
    torch.manual_seed(0)
    batch = _batch()
    batch = dataclasses.replace(batch, images=batch.images.double(), crop=batch.crop.double(),
                                joints2d=batch.joints2d.double(), joints3d=batch.joints3d.double())
    detector = _tiny_detector().double().eval()
    with torch.no_grad():  # off ReLU's kink: at init every BN bias is 0 and post-ReLU zeros stay 0
        for module in detector.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
    task = _task(detector, adjoint=le.ImplicitAdjoint(damping=0.0)).double()
    params = [p for p in detector.parameters()]
    direction = [torch.randn_like(p) for p in params]

    def loss() -> torch.Tensor:
        solution = task(batch)
        assert bool(solution.converged.all())
        return task.loss(solution, batch)

    value = loss()
    grads = torch.autograd.grad(value, params)
    analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True))
    eps = 1e-6
    with torch.no_grad():
        for p, d in zip(params, direction, strict=True):
            p.add_(eps * d)
        plus = loss()
        for p, d in zip(params, direction, strict=True):
            p.sub_(2 * eps * d)
        minus = loss()
        for p, d in zip(params, direction, strict=True):
            p.add_(eps * d)
    numeric = (plus - minus) / (2 * eps)
    assert abs(float(analytic)) > 1e-3  # the detector moves the loss
    assert float(analytic) == pytest.approx(float(numeric), rel=1e-4)


def test_staged_freezes_the_detector_and_end_to_end_moves_it():
    """Catches: `freeze_backbone` ignored (staged would be end to end), or a 3D loss that never
    reaches the detector without a heatmap term."""
    torch.manual_seed(1)
    batch = _batch()
    staged = _task(_tiny_detector(), freeze_backbone=True)
    staged.loss(staged(batch), batch).backward()
    assert all(p.grad is None for p in staged.backbone.parameters())
    assert any(p.grad is not None for p in staged.layer.parameters())
    joint = _task(_tiny_detector(), heatmap_weight=0.0)
    joint.loss(joint(batch), batch).backward()
    assert all(p.grad is not None for p in joint.backbone.parameters())
    assert {g["name"] for g in joint.parameter_groups()} == {"energy", "backbone"}
    assert {g["name"] for g in staged.parameter_groups()} == {"energy"}
    # The recipes' separate shape-model rate must not drop the detector from the optimizer.
    split = _task(_tiny_detector(), energy_lr=1e-2, shape_lr=2e-3, backbone_lr=2e-4)
    groups = {g["name"]: g for g in split.parameter_groups()}
    assert set(groups) == {"shape", "energy", "backbone"}
    assert groups["backbone"]["lr"] == 2e-4
    assert len(groups["backbone"]["params"]) == len(list(split.backbone.parameters()))


def test_heatmap_weight_adds_the_detectors_own_loss():
    """Catches: `heatmap_weight` ignored, or the heatmap targets taken from image pixels."""
    batch = _batch()
    torch.manual_seed(2)
    detector = _tiny_detector()
    pose_only = _task(detector)
    both = _task(detector, heatmap_weight=1.0)
    both.layer.load_state_dict(pose_only.layer.state_dict())
    first = pose_only.loss(pose_only(batch), batch)
    second = both.loss(both(batch), batch)
    assert float(second) > float(first)
    heatmap_only = _task(detector, pose_weight=0.0, heatmap_weight=1.0)
    third = heatmap_only.loss(heatmap_only(batch), batch)
    assert float(second) == pytest.approx(float(first) + float(third), rel=1e-5)


def test_stage_checkpoints_start_the_next_stage(tmp_path):
    """Catches: a stage that silently starts from scratch, or one that loads the wrong weights."""
    import pytorch_lightning as pl

    trainer = pl.Trainer(max_steps=2, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path,
                         limit_val_batches=0, accelerator="cpu")
    data = PoseImageDataModule(root=None, batch_size=2, synthetic_frames=8, image_size=32,
                               render=RenderConfig(image_size=32))
    stage1 = KeypointTask(_tiny_detector())
    trainer.fit(stage1, datamodule=data)
    trainer.save_checkpoint(tmp_path / "detector.ckpt")
    stage2 = _task(_tiny_detector(), freeze_backbone=True,
                   init_weights=str(tmp_path / "detector.ckpt"))
    energy_before = {k: v.clone() for k, v in stage2.layer.state_dict().items()}
    stage2.trainer = pl.Trainer(logger=False, accelerator="cpu")  # a fresh fit: ckpt_path None
    stage2.on_fit_start()
    for key, value in stage1.backbone.state_dict().items():
        assert torch.equal(stage2.backbone.state_dict()[key], value), key
    for key, value in stage2.layer.state_dict().items():
        assert torch.equal(value, energy_before[key]), key  # a detector checkpoint: energy kept
    wrong = _task(KeypointDetector(stacks=1, depth=1, channels=8), init_weights=str(
        tmp_path / "detector.ckpt"))
    with pytest.raises(RuntimeError, match="size mismatch"):
        wrong.load_weights(str(tmp_path / "detector.ckpt"))
    with pytest.raises(CheckpointNotFoundError, match="init_weights"):
        stage2.load_weights(str(tmp_path / "absent.ckpt"))


def test_reports_triangulate_the_detected_keypoints_not_the_ground_truth():
    """Catches: the detector + DLT baseline computed from the batch's ground-truth 2D points."""
    batch = _batch()
    task = _task(_tiny_detector())
    solution = task(batch)
    metrics = task.baseline_metrics(solution, batch)
    key = "detector + DLT triangulation (16 joints)/mpjpe"
    assert set(metrics) == {key, key.replace("/mpjpe", "/pa_mpjpe")}
    assert float(metrics[key].mean()) > 5.0  # an untrained detector is far off; ground truth ≈ 0


def test_stored_detections_instead_of_images_are_named():
    """Catches: an image task fed a detection DataModule failing deep inside the detector."""
    from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses

    task = _task(_tiny_detector())
    with pytest.raises(TypeError, match="PoseImageBatch"):
        task(generate_synthetic_poses(2, seed=0).to_batch())
