"""A keypoint detector run over the calibrated views of a batch of frames, and its 2D scores."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection

from lightning_energy.datasets.pose_batch import PoseBatch
from lightning_energy.datasets.pose_images import PoseImageBatch
from lightning_energy.datasets.pose_render import crop_to_image, image_to_crop
from lightning_energy.metrics.keypoints import KeypointError, LeftRightSwapRate
from lightning_energy.networks.heads import Detections


@dataclass
class DetectedViews:
    """A detector's output on the C views of B frames.

    Attributes:
        detections: The detector's output on the B·C crops (keypoints in crop pixels).
        frames: The frames with the detector's keypoints, in full-image pixels, as ``joints2d``
            (B, C, J, 2), every joint visible: what the pose energy and triangulation read.
        confidence: (B, C, J) the detector's confidence per keypoint.
    """

    detections: Detections
    frames: PoseBatch
    confidence: Tensor


def detect_views(detector: nn.Module, batch: PoseImageBatch) -> DetectedViews:
    """Run ``detector`` on every view crop (B, C, 3, S, S) and map its keypoints to the images."""
    b, c = batch.images.shape[:2]
    detections = detector(batch.images.flatten(0, 1))
    j = detections.keypoints.shape[1]
    keypoints = crop_to_image(detections.keypoints.reshape(b, c, j, 2), batch.crop.unsqueeze(-2))
    fields = {f.name: getattr(batch, f.name) for f in dataclasses.fields(PoseBatch)}
    fields.update(joints2d=keypoints.to(batch.joints2d.dtype),
                  visible=torch.ones(b, c, j, dtype=torch.bool, device=keypoints.device))
    return DetectedViews(detections, PoseBatch(**fields), detections.confidence.reshape(b, c, j))


def crop_targets(batch: PoseImageBatch) -> tuple[Tensor, Tensor]:
    """Ground-truth keypoints in crop pixels (B·C, J, 2) and which count (B·C, J) bool.

    A joint counts when it is visible and inside its crop: a heatmap cannot hold a peak
    outside its image.
    """
    keypoints = image_to_crop(batch.joints2d, batch.crop.unsqueeze(-2)).to(batch.images.dtype)
    size = batch.images.shape[-1]
    inside = ((keypoints >= 0) & (keypoints <= size)).all(-1) & batch.visible
    return keypoints.flatten(0, 1), inside.flatten(0, 1)


def keypoint_metrics() -> MetricCollection:
    """2D scores of a detector: mean keypoint error (px) and the left/right swap rate."""
    return MetricCollection({"keypoint_error_px": KeypointError(),
                             "swap_rate": LeftRightSwapRate()})


def update_keypoint_metrics(metrics: MetricCollection, views: DetectedViews,
                            batch: PoseImageBatch) -> None:
    """Score the detected keypoints against the ground truth, both in full-image pixels."""
    metrics.update(views.frames.joints2d.detach().flatten(0, 1),
                   batch.joints2d.flatten(0, 1), batch.visible.flatten(0, 1))
