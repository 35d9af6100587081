"""Train a keypoint detector on heatmaps alone, scored in 2D and, by triangulation, in 3D."""

from __future__ import annotations

from typing import Any, Literal, cast

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MetricCollection

from lightning_energy.datasets.pose_images import PoseImageBatch
from lightning_energy.metrics.pose import MPJPE, PAMPJPE
from lightning_energy.networks.heads import KeypointDetector
from lightning_energy.networks.heatmaps import heatmap_loss
from lightning_energy.tasks.base import STAGES, check_learning_rates, metrics_key
from lightning_energy.tasks.detection import (
    crop_targets,
    detect_views,
    keypoint_metrics,
    update_keypoint_metrics,
)
from lightning_energy.tasks.pose import dlt_triangulation


class KeypointTask(pl.LightningModule):
    """Stage 1 of end-to-end pose training: the detector learns from 2D heatmaps alone.

    Batches are :class:`~lightning_energy.datasets.PoseImageBatch` (C views of B frames). The
    loss is the heatmap loss of every stack against the ground-truth 2D keypoints. Logged per
    stage: ``{stage}/loss``, ``{stage}/keypoint_error_px``, ``{stage}/swap_rate`` and, from DLT
    triangulation of the detected keypoints across the calibrated views (16 joints, as the
    stored-detection baseline), ``{stage}/mpjpe`` and ``{stage}/pa_mpjpe`` in mm: the
    "detector + triangulation" row of an end-to-end comparison.

    Args:
        detector: The keypoint network (a :class:`~lightning_energy.networks.KeypointDetector`);
            named ``backbone`` inside, as in every task, so checkpoints of all stages share keys.
        optimizer: Optimizer factory.
        scheduler: Optional learning-rate scheduler factory.
        lr: Learning rate.
        heatmap_sigma: σ of the Gaussian heatmap targets, pixels of the input crop.
        scheduler_interval: Step the scheduler every ``"epoch"`` or optimizer ``"step"``.

    Example:
        >>> import torch
        >>> from lightning_energy.networks import KeypointDetector
        >>> from lightning_energy.tasks import KeypointTask
        >>> task = KeypointTask(KeypointDetector(stacks=1, depth=1, channels=8))
        >>> detections = task(torch.rand(2, 3, 32, 32))  # crops (N, 3, S, S)
        >>> detections.keypoints.shape, detections.confidence.shape  # (N, J, 2), (N, J)
        (torch.Size([2, 17, 2]), torch.Size([2, 17]))
    """

    def __init__(
        self,
        detector: KeypointDetector,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        lr: float = 1e-3,
        heatmap_sigma: float = 1.5,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__()
        check_learning_rates(lr=lr)
        if not heatmap_sigma > 0:
            raise ValueError(f"Expected `heatmap_sigma` > 0, got {heatmap_sigma!r}.")
        self.backbone = detector
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.lr, self.heatmap_sigma, self.scheduler_interval = lr, heatmap_sigma, scheduler_interval
        self.metrics = nn.ModuleDict()
        for stage in STAGES:
            self.metrics[metrics_key(stage)] = keypoint_metrics().clone(prefix=f"{stage}/")
            self.metrics[f"{stage}_poses"] = MetricCollection(
                {"mpjpe": MPJPE(), "pa_mpjpe": PAMPJPE()}, prefix=f"{stage}/")

    def forward(self, images: Tensor) -> Any:
        """The detector's output on crops (N, 3, S, S)."""
        return self.backbone(images)

    def shared_step(self, batch: PoseImageBatch, stage: str) -> Tensor:
        """Heatmap loss; 2D and triangulated 3D scores logged as ``"{stage}/…"``."""
        views = detect_views(self.backbone, batch)
        keypoints, counted = crop_targets(batch)
        loss = heatmap_loss(views.detections.heatmaps, keypoints, counted,
                            self.backbone.stride, self.heatmap_sigma, self.backbone.beta)
        size = len(batch)
        self.log(f"{stage}/loss", loss, batch_size=size, prog_bar=True,
                 on_step=stage == "train", on_epoch=True, sync_dist=True)
        scores = cast(MetricCollection, self.metrics[metrics_key(stage)])
        update_keypoint_metrics(scores, views, batch)
        poses, mask = dlt_triangulation(views.frames.to(dtype=torch.float64))
        triangulated = cast(MetricCollection, self.metrics[f"{stage}_poses"])
        triangulated.update(poses.detach(), batch.joints3d.double(), mask.expand(len(batch), -1))
        self.log_dict(scores, batch_size=size, on_step=False, on_epoch=True)
        self.log_dict(triangulated, batch_size=size, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: PoseImageBatch, batch_idx: int) -> Tensor:  # noqa: D102
        return self.shared_step(batch, "train")

    def validation_step(self, batch: PoseImageBatch, batch_idx: int) -> Tensor:  # noqa: D102
        return self.shared_step(batch, "val")

    def test_step(self, batch: PoseImageBatch, batch_idx: int) -> Tensor:  # noqa: D102
        return self.shared_step(batch, "test")

    def predict_step(self, batch: PoseImageBatch, batch_idx: int) -> dict[str, Tensor]:
        """Detected keypoints (B, C, J, 2) in full-image pixels and their confidences (B, C, J)."""
        views = detect_views(self.backbone, batch)
        return {"keypoints": views.frames.joints2d.detach(),
                "confidence": views.confidence.detach()}

    def configure_optimizers(self) -> Any:  # noqa: D102
        optimizer = self.optimizer_factory([{"params": self.backbone.parameters(), "lr": self.lr,
                                             "name": "backbone"}])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {
            "scheduler": self.scheduler_factory(optimizer), "interval": self.scheduler_interval}}
