"""End to end from pixels: view crops → keypoint detector → multi-view pose energy → x*."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal, cast

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torchmetrics import MetricCollection

from lightning_energy.adjoints.base import Adjoint
from lightning_energy.datasets.pose_batch import PoseBatch
from lightning_energy.datasets.pose_images import PoseImageBatch
from lightning_energy.energies.pose import MultiViewPoseEnergy, pose_energy_inputs
from lightning_energy.errors import CheckpointNotFoundError
from lightning_energy.networks.heads import KeypointDetector
from lightning_energy.networks.heatmaps import heatmap_loss
from lightning_energy.solvers.base import Solver
from lightning_energy.solvers.solution import Solution
from lightning_energy.tasks.base import STAGES
from lightning_energy.tasks.detection import (
    DetectedViews,
    crop_targets,
    detect_views,
    keypoint_metrics,
    update_keypoint_metrics,
)
from lightning_energy.tasks.pose import MultiViewPoseTask


class ImagePoseTask(MultiViewPoseTask):
    """:class:`MultiViewPoseTask` fed by a keypoint detector on images instead of stored detections.

    Each frame's C view crops (:class:`~lightning_energy.datasets.PoseImageBatch`, (B, C, 3, S,
    S)) go through ``detector`` (the task's ``backbone``). Its keypoints are mapped from crop to
    full-image pixels with each view's crop transform and, weighted by its confidences, are the
    energy's detections. The trust-region implicit gradient of the 3D loss flows through x* into
    the keypoints and confidences, and from them into the detector's weights.

    Loss = ``pose_weight`` · root-aligned MPJPE (mm, converged frames) + ``heatmap_weight`` ·
    the heatmap loss of every stack against the ground-truth 2D keypoints. Logged beside the
    3D metrics: ``{stage}/keypoint_error_px`` and ``{stage}/swap_rate`` of the detector, and at
    test time the detector's keypoints triangulated (``test/baseline/detector + DLT…``).

    Args:
        detector: The keypoint network (a :class:`~lightning_energy.networks.KeypointDetector`).
        energy: The pose energy (default: the tiny synthetic model).
        solver: Inner solver (default Levenberg–Marquardt, float64, 30 steps).
        adjoint: Backward rule (default trust-region implicit, exact Hessian, λ = 1e-2).
        yaw_starts: Yaw offsets (radians) added to the triangulated yaw, one start each.
        optimizer: Optimizer factory.
        scheduler: Optional scheduler factory.
        energy_lr: Learning rate of the energy parameters.
        shape_lr: Learning rate of the PPCA shape model (default ``energy_lr``).
        backbone_lr: Learning rate of the detector (default ``energy_lr``).
        freeze_backbone: Keep the detector fixed (the "staged" comparison).
        pose_weight: Weight of the 3D loss (mm).
        heatmap_weight: Weight of the heatmap loss (0: the detector learns from 3D alone).
        heatmap_sigma: σ of the heatmap targets, pixels of the input crop.
        use_confidence: Multiply each joint's energy weight by the detector's confidence.
        init_weights: A checkpoint of the previous stage (its ``last.ckpt``) whose weights the
            task starts from (:meth:`load_weights`), unless the Trainer restores a checkpoint
            of its own (``--ckpt_path``): a trained checkpoint evaluates anywhere on its own.
        chunk_size: As :class:`MultiViewPoseTask`.
        component_temperature: As :class:`MultiViewPoseTask`.
        scheduler_interval: Step the scheduler every ``"epoch"`` or optimizer ``"step"``.

    Example:
        The detector is the task's backbone, trained with the energy at its own rate:

        >>> from lightning_energy.networks import KeypointDetector
        >>> from lightning_energy.tasks import ImagePoseTask
        >>> detector = KeypointDetector(stacks=1, depth=1, channels=8)
        >>> task = ImagePoseTask(detector, backbone_lr=1e-4)
        >>> task.backbone is detector, [group["name"] for group in task.parameter_groups()]
        (True, ['energy', 'backbone'])
    """

    def __init__(
        self,
        detector: KeypointDetector,
        energy: MultiViewPoseEnergy | None = None,
        solver: Solver | None = None,
        adjoint: Adjoint | None = None,
        yaw_starts: Sequence[float] = (0.0,),
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        energy_lr: float = 1e-3,
        shape_lr: float | None = None,
        backbone_lr: float | None = None,
        freeze_backbone: bool = False,
        pose_weight: float = 1.0,
        heatmap_weight: float = 0.0,
        heatmap_sigma: float = 1.5,
        use_confidence: bool = True,
        init_weights: str | None = None,
        chunk_size: int | Literal["auto"] | None = "auto",
        component_temperature: float | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        if not (pose_weight >= 0 and heatmap_weight >= 0 and pose_weight + heatmap_weight > 0):
            raise ValueError("Expected `pose_weight` and `heatmap_weight` >= 0, not both 0, got "
                             f"{pose_weight!r} and {heatmap_weight!r}.")
        if not heatmap_sigma > 0:
            raise ValueError(f"Expected `heatmap_sigma` > 0, got {heatmap_sigma!r}.")
        super().__init__(energy, solver, adjoint, yaw_starts, optimizer, scheduler, energy_lr,
                         shape_lr, chunk_size, component_temperature, scheduler_interval)
        self.attach_backbone(detector, backbone_lr, freeze_backbone)
        self.pose_weight, self.heatmap_weight = pose_weight, heatmap_weight
        self.heatmap_sigma, self.use_confidence = heatmap_sigma, use_confidence
        for stage in STAGES:
            self.metrics[f"{stage}_keypoints"] = keypoint_metrics().clone(prefix=f"{stage}/")
        self.init_weights = init_weights
        # The views detected by the last forward: the loss and the reports read them.
        self._views: DetectedViews | None = None

    def on_fit_start(self) -> None:  # noqa: D102
        self._start_from_init_weights()

    def on_validation_start(self) -> None:  # noqa: D102
        if self.trainer.state.fn != "fit":  # during a fit, on_fit_start did it
            self._start_from_init_weights()

    def on_test_start(self) -> None:  # noqa: D102
        self._start_from_init_weights()

    def on_predict_start(self) -> None:  # noqa: D102
        self._start_from_init_weights()

    def _start_from_init_weights(self) -> None:
        """Load ``init_weights`` unless the Trainer restored a checkpoint (``ckpt_path``).

        So ``fit`` starts from the previous stage, a resumed ``fit`` from its own checkpoint,
        ``test --ckpt_path CKPT`` evaluates CKPT alone (the hooks run after the restore), and
        ``test`` without a checkpoint evaluates the previous stage's weights (e.g. stage 1's
        detector with the untrained energy).
        """
        if self.init_weights is not None and self.trainer.ckpt_path is None:
            self.load_weights(self.init_weights)

    def load_weights(self, path: str) -> None:
        """Load the weights a checkpoint's ``state_dict`` shares with this task.

        A stage-1 checkpoint (:class:`~lightning_energy.tasks.KeypointTask`) holds only the
        detector (``backbone.*``), and the energy keeps its initial values; a stage-2 checkpoint
        holds both. Optimizer state is not loaded.

        Raises:
            CheckpointNotFoundError: If there is no file at ``path``.
            ValueError: If the checkpoint holds weights this task has not (another
                architecture) or none that it has.
        """
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        except FileNotFoundError as err:
            raise CheckpointNotFoundError(
                f"`init_weights`: no checkpoint at {path!r}; run the previous stage first or "
                "pass `--model.init_args.init_weights null`.") from err
        state = checkpoint.get("state_dict", checkpoint)
        result = self.load_state_dict(state, strict=False)
        loaded = len(state) - len(result.unexpected_keys)
        if result.unexpected_keys or loaded == 0:
            raise ValueError(
                f"`init_weights` {path!r}: {loaded} weights match this task; unexpected "
                f"{sorted(result.unexpected_keys)[:5]} (another detector or energy shape?).")

    def energy_inputs(self, batch: PoseBatch) -> Any:
        """Detect every view and build the energy's inputs from the detections (float64)."""
        if self.backbone is None:
            raise RuntimeError("ImagePoseTask needs its detector (`backbone`).")
        self._views = views = detect_views(self.backbone, images_of(batch))
        confidence = views.confidence.double() if self.use_confidence else None
        return pose_energy_inputs(views.frames.to(dtype=torch.float64),
                                  self.pose_energy.num_components, confidence)

    def loss(self, solution: Solution, batch: PoseBatch) -> Tensor:
        """``pose_weight`` · MPJPE + ``heatmap_weight`` · heatmap loss of the last detections."""
        loss = self.pose_weight * super().loss(solution, batch)
        if self.heatmap_weight > 0:
            keypoints, counted = crop_targets(images_of(batch))
            detector = cast(KeypointDetector, self.backbone)
            heatmaps = self._detected().detections.heatmaps
            loss = loss + self.heatmap_weight * heatmap_loss(
                heatmaps, keypoints, counted, detector.stride, self.heatmap_sigma, detector.beta)
        return loss

    def shared_step(self, batch: PoseImageBatch, stage: str) -> dict[str, Any]:
        """The pose task's step, then the detector's 2D scores of the same forward pass."""
        out = super().shared_step(batch, stage)
        scores = cast(MetricCollection, self.metrics[f"{stage}_keypoints"])
        update_keypoint_metrics(scores, self._detected(), images_of(batch))
        self.log_dict(scores, batch_size=len(batch), on_step=False, on_epoch=True)
        return out

    def baseline_errors(self, solution: Solution, batch: PoseBatch) -> dict[str, Tensor]:
        """Per-frame MPJPE of the energy and of the detector's keypoints triangulated."""
        return super().baseline_errors(solution, self._as_detected(batch))

    def baseline_metrics(self, solution: Solution, batch: PoseBatch) -> dict[str, Tensor]:
        """MPJPE and PA-MPJPE of DLT triangulation of the detector's keypoints (16 joints)."""
        detected = self._as_detected(batch)
        renamed = {}
        for key, value in super().baseline_metrics(solution, detected).items():
            renamed[key.replace("DLT triangulation", "detector + DLT triangulation")] = value
        return renamed

    def _detected(self) -> DetectedViews:
        if self._views is None:
            raise RuntimeError("No detections yet: call the task on a batch first.")
        return self._views

    def _as_detected(self, batch: PoseBatch) -> PoseBatch:
        """The frames with the detector's keypoints of ``batch`` (detached: reports only)."""
        frames = self._detected().frames
        return dataclasses.replace(frames, joints2d=frames.joints2d.detach())


def images_of(batch: PoseBatch) -> PoseImageBatch:
    """``batch`` as a :class:`PoseImageBatch`, or a clear error naming what came instead."""
    if not isinstance(batch, PoseImageBatch):
        raise TypeError(f"Expected a `PoseImageBatch` (images of the views, e.g. from "
                        f"`PoseImageDataModule`), got {type(batch).__name__}: an image task "
                        "needs images, not stored detections.")
    return batch
