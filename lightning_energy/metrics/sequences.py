"""Per-sequence tracking scores (OTB one-pass evaluation), for tables and baselines."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from lightning_energy.metrics.functional import mean_iou, precision_at_pixels, success_auc

#: Names of the scores of :func:`sequence_scores`, in table order.
SEQUENCE_METRICS = ("success_auc", "precision_20px", "mean_iou")


def sequence_scores(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Success AUC, precision at 20 px and mean IoU of one sequence's boxes.

    Args:
        pred: Predicted boxes ``(x, y, w, h)`` (T, 4); a NaN row (no box) scores IoU 0.
        target: Ground-truth boxes (T, 4); NaN or zero-size rows are not scored.

    Example:
        >>> import torch
        >>> box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
        >>> sequence_scores(box, box)["mean_iou"]
        1.0
    """
    pred, target = pred.to(torch.float64), target.to(torch.float64)
    return {"success_auc": float(success_auc(pred, target)),
            "precision_20px": float(precision_at_pixels(pred, target)),
            "mean_iou": float(mean_iou(pred, target))}


def mean_scores(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Sequence-averaged scores (every sequence counts once) of :func:`sequence_scores` rows."""
    rows = list(rows)
    if not rows:
        raise ValueError("Expected at least one sequence's scores, got none.")
    return {name: sum(row[name] for row in rows) / len(rows) for name in SEQUENCE_METRICS}
