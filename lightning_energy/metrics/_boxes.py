"""Box geometry and per-sequence reductions behind the OTB tracking metrics."""

from __future__ import annotations

import torch
from torch import Tensor

#: OTB overlap thresholds 0:0.05:1, computed as k / 20 so that 0.5 is exactly representable.
OTB_IOU_THRESHOLDS: tuple[float, ...] = tuple(k / 20 for k in range(21))


def _valid_boxes(boxes: Tensor) -> Tensor:
    """(…, 4) → (…) bool: finite with positive width and height."""
    return boxes.isfinite().all(-1) & (boxes[..., 2] > 0) & (boxes[..., 3] > 0)


def _box_iou(pred: Tensor, target: Tensor) -> Tensor:
    """Element-wise IoU of (…, 4) x, y, w, h boxes, continuous areas; 0 for non-finite ``pred``."""
    pw, ph = pred[..., 2].clamp_min(0), pred[..., 3].clamp_min(0)
    tw, th = target[..., 2].clamp_min(0), target[..., 3].clamp_min(0)
    px, py, tx, ty = pred[..., 0], pred[..., 1], target[..., 0], target[..., 1]
    inter_w = (torch.minimum(px + pw, tx + tw) - torch.maximum(px, tx)).clamp_min(0)
    inter_h = (torch.minimum(py + ph, ty + th) - torch.maximum(py, ty)).clamp_min(0)
    inter = inter_w * inter_h
    union = pw * ph + tw * th - inter
    ok = pred.isfinite().all(-1) & (union > 0)
    return torch.where(ok, inter / torch.where(ok, union, 1), 0)


def _center_error(pred: Tensor, target: Tensor) -> Tensor:
    """Element-wise distance between box centres x + w/2, y + h/2; inf for non-finite ``pred``."""
    delta = (pred[..., :2] + pred[..., 2:] / 2) - (target[..., :2] + target[..., 2:] / 2)
    error = torch.linalg.vector_norm(delta, dim=-1)
    return torch.where(pred.isfinite().all(-1), error, torch.inf)


def _success_scores(pred: Tensor, target: Tensor) -> Tensor:
    """Per-frame fraction of the 21 OTB thresholds that the IoU strictly exceeds."""
    iou = _box_iou(pred, target)
    thresholds = torch.tensor(OTB_IOU_THRESHOLDS, dtype=iou.dtype, device=iou.device)
    return (iou[..., None] > thresholds).to(iou.dtype).mean(-1)


def _precision_scores(pred: Tensor, target: Tensor, threshold: float) -> Tensor:
    return (_center_error(pred, target) <= threshold).double()


def _frame_mask(target: Tensor, valid: Tensor, skip_first: bool) -> Tensor:
    mask = valid & _valid_boxes(target)
    if skip_first:
        mask = torch.cat([torch.zeros_like(mask[:, :1]), mask[:, 1:]], dim=1)
    return mask


def _sequence_update(scores: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Reduce per-frame scores (B, T) over frames where ``mask`` holds.

    Returns:
        Sum of per-sequence means, number of sequences with a valid frame, sum of frame scores,
        number of valid frames.
    """
    frame_sum = torch.where(mask, scores, 0).sum(-1, dtype=torch.float64)
    frames = mask.sum(-1)
    has_frames = frames > 0
    seq_mean = torch.where(has_frames, frame_sum / frames.clamp_min(1), 0)
    return seq_mean.sum(), has_frames.sum(), frame_sum.sum(), frames.sum()


def _sequence_compute(
    seq_sum: Tensor, num_sequences: Tensor, frame_sum: Tensor, num_frames: Tensor, average: str
) -> Tensor:
    if average == "sequence":
        return seq_sum / num_sequences
    return frame_sum / num_frames
