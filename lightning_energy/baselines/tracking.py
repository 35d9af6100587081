"""Tracker-fusion baselines a user runs against a learned fusion energy.

Every baseline (a *fuser*) maps one sequence (:class:`~lightning_energy.datasets.TrackerResults`)
to fused pixel boxes ``(x, y, w, h)`` of shape (T, 4): a single tracker, the coordinate-wise
median or mean of all or of the top-k trackers, the tracker that agrees most with the others,
and two hindsight oracles (best tracker per sequence, per frame). :func:`score_sequences`
applies the OTB protocol (:func:`~lightning_energy.metrics.sequences.sequence_scores`: success
AUC over IoU thresholds 0:0.05:1, precision at 20 px, mean IoU; invalid ground truth excluded,
first frame included; a missing box scores IoU 0, as ``trackers.csv`` does). During
``trainer.test`` the :class:`~lightning_energy.callbacks.TrackerBaselines` callback scores them
on the same test sequences as the learned energy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from lightning_energy.datasets.otb import TrackerResults, TrackingSequences
from lightning_energy.datasets.tracking_batch import TrackingBatch, TrackingSample, collate_tracking
from lightning_energy.energies.tracking import consensus_boxes
from lightning_energy.errors import ShapeError
from lightning_energy.metrics.functional import box_iou
from lightning_energy.metrics.sequences import mean_scores, sequence_scores

Fuser = Callable[[TrackerResults], Tensor]
"""A baseline: one sequence → fused boxes (T, 4)."""

def ground_truth(item: TrackerResults) -> Tensor:
    """The sequence's ground-truth boxes (T, 4), float64 (NaN rows kept: they are not scored)."""
    return torch.from_numpy(item.gt).to(torch.float64)


def score_sequences(fuser: Fuser, data: TrackingSequences) -> dict[str, float]:
    """Sequence-averaged OTB scores of a baseline over every sequence of ``data``."""
    return mean_scores(sequence_scores(fuser(item), ground_truth(item)) for item in data)


def tracker_aucs(data: TrackingSequences) -> np.ndarray:
    """Sequence-averaged success AUC of each single tracker (K,), missing boxes scoring 0."""
    return np.array([score_sequences(single_tracker(k), data)["success_auc"]
                     for k in range(data.num_trackers)])


def single_tracker(k: int) -> Fuser:
    """The boxes of tracker ``k`` as reported (NaN where it reported nothing)."""
    return lambda item: torch.from_numpy(item.boxes[:, k].copy())


def _as_batch(item: TrackerResults, trackers: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
    sample = TrackingSample.from_arrays(item.boxes, item.gt, item.sequence)
    boxes, valid = sample.boxes.double(), sample.valid
    if trackers is not None:
        boxes, valid = boxes[:, list(trackers)], valid[:, list(trackers)]
    return boxes[None], valid[None]


def _forward_fill(boxes: Tensor, ok: Tensor) -> Tensor:
    """Rows (T, 4) where ``ok`` is False take the previous good row (the first, at the start)."""
    t = torch.arange(boxes.shape[0])
    last = torch.where(ok, t, -1).cummax(0).values
    first = int(torch.where(ok, t, boxes.shape[0] - 1).min())
    return boxes[torch.where(last < 0, first, last)]


def coordinatewise(how: str, trackers: Sequence[int] | None = None) -> Fuser:
    """Coordinate-wise ``"median"`` or ``"mean"`` of ``x, y, w, h`` over the valid trackers.

    Args:
        how: ``"median"`` or ``"mean"``.
        trackers: Indices of the trackers to combine (default all).
    """
    if how not in ("median", "mean"):
        raise ValueError(f"Expected `how` to be 'median' or 'mean', got {how!r}.")

    def fuse(item: TrackerResults) -> Tensor:
        boxes, valid = _as_batch(item, trackers)
        masked = torch.where(valid[..., None], boxes, torch.nan)[0]
        out = masked.nanmedian(1).values if how == "median" else masked.nanmean(1)
        ok = valid[0].any(-1)
        return _forward_fill(torch.nan_to_num(out), ok) if bool(ok.any()) else out

    return fuse


def robust_consensus(trackers: Sequence[int] | None = None) -> Fuser:
    """Median of centre and log-size (the energy's starting point and reference)."""

    def fuse(item: TrackerResults) -> Tensor:
        boxes, valid = _as_batch(item, trackers)
        return consensus_boxes(boxes, valid)[0]

    return fuse


def oracle(item: TrackerResults) -> Tensor:
    """Per frame, the box of the tracker with the highest IoU with the ground truth (hindsight)."""
    boxes, valid = _as_batch(item)
    p = boxes[0]
    iou = torch.where(valid[0], box_iou(p, ground_truth(item)[:, None].expand_as(p)), -1.0)
    best = iou.argmax(-1)
    return p[torch.arange(p.shape[0]), best]


def sequence_oracle(item: TrackerResults) -> Tensor:
    """The one tracker with the best success AUC on this sequence (hindsight).

    The upper bound of any method that picks a single tracker per sequence, e.g. from how much
    the trackers agree; compare with the per-frame :func:`oracle`.
    """
    aucs = [sequence_scores(single_tracker(k)(item), ground_truth(item))["success_auc"]
            for k in range(item.boxes.shape[1])]
    return single_tracker(int(np.argmax(aucs)))(item)


def agreement_selected(trust: np.ndarray | None = None) -> Fuser:
    """Per sequence, the tracker that agrees most with the others (no ground truth).

    Tracker k scores trust_k · Σ_{j≠k} trust_j IoU̅_kj / Σ_{j≠k} trust_j, with IoU̅_kj the mean IoU
    of the two trackers' boxes over the sequence (a missing box counts 0); the best-scoring
    tracker's boxes are returned whole.

    Args:
        trust: Non-negative per-tracker weights (K,), not all 0, e.g. from the training AUCs
            (default 1).
    """
    if trust is not None and (np.ndim(trust) != 1 or (np.asarray(trust) < 0).any()
                              or not np.asarray(trust).any()):
        raise ValueError(f"Expected `trust` of shape (K,), non-negative and not all 0, got "
                         f"{np.asarray(trust)!r}.")

    def fuse(item: TrackerResults) -> Tensor:
        boxes = torch.from_numpy(item.boxes).to(torch.float64)
        k = boxes.shape[1]
        if trust is not None and len(trust) != k:
            raise ShapeError(f"Expected `trust` of shape ({k},), one weight per tracker of "
                             f"sequence {item.sequence!r}, got shape {np.shape(trust)}.")
        w = torch.ones(k, dtype=torch.float64) if trust is None else torch.as_tensor(
            trust, dtype=torch.float64)
        pair = box_iou(*torch.broadcast_tensors(boxes[:, :, None], boxes[:, None, :]))
        mean_iou = pair.mean(0).fill_diagonal_(0.0)
        others = (w.sum() - w).clamp_min(1e-12)
        score = w * (mean_iou * w).sum(-1) / others
        return single_tracker(int(score.argmax()))(item)

    return fuse


def top_k(aucs: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` trackers with the highest AUC, best first."""
    return [int(i) for i in np.argsort(-aucs, kind="stable")[:k]]


def batch_of(item: TrackerResults) -> TrackingBatch:
    """A whole sequence as a one-sample :class:`~lightning_energy.datasets.TrackingBatch`."""
    return collate_tracking([TrackingSample.from_arrays(item.boxes, item.gt, item.sequence)])
