"""Evaluation metrics: torchmetrics classes (DDP-correct sums and counts) and functional twins.

Classes accumulate float64 sums and int64 counts; their ``compute()`` returns float64 tensors.
Each class ``X`` has a functional twin in :mod:`lightning_energy.metrics.functional` that raises
the same errors.
"""

from lightning_energy.metrics.convergence import SolverConvergence
from lightning_energy.metrics.functional import (
    keypoint_error,
    left_right_swap_rate,
    mean_iou,
    mpjpe,
    pa_mpjpe,
    precision_at_pixels,
    solver_convergence,
    success_auc,
    systematic_offset,
)
from lightning_energy.metrics.keypoints import KeypointError, LeftRightSwapRate
from lightning_energy.metrics.pose import MPJPE, PAMPJPE, SystematicOffset
from lightning_energy.metrics.tracking import MeanIoU, PrecisionAtPixels, SuccessAUC

__all__ = [
    "MPJPE",
    "PAMPJPE",
    "KeypointError",
    "LeftRightSwapRate",
    "MeanIoU",
    "PrecisionAtPixels",
    "SolverConvergence",
    "SuccessAUC",
    "SystematicOffset",
    "keypoint_error",
    "left_right_swap_rate",
    "mean_iou",
    "mpjpe",
    "pa_mpjpe",
    "precision_at_pixels",
    "solver_convergence",
    "success_auc",
    "systematic_offset",
]
