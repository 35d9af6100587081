"""Per-joint diagnostics of a pose predictor: where the error sits, and how much is a bias.

Study code (not packaged): it composes the library's public classes. A *predictor* maps a
:class:`~lightning_energy.datasets.PoseBatch` to poses (B, J, 3), mm, world frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from lightning_energy.datasets.pose_batch import PoseArrays, PoseBatch

RIGHT_HIP, LEFT_HIP = 1, 4  # in the 17-joint order of ``datasets.pose_batch.JOINT_NAMES``

Predictor = Callable[[PoseBatch], Tensor]


def _root_aligned(predict: Predictor, arrays: PoseArrays,
                  batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Per batch: predicted and true poses (B, J, 3), mm, float64, both minus their root joint."""
    with torch.no_grad():
        for first in range(0, len(arrays), batch_size):
            batch = arrays.to_batch(np.arange(first, min(first + batch_size, len(arrays))))
            pred, target = predict(batch).double(), batch.joints3d.double()
            yield pred - pred[:, :1], target - target[:, :1]


def per_joint_error(predict: Predictor, arrays: PoseArrays, batch_size: int = 256) -> np.ndarray:
    """(J,) mean root-aligned Euclidean error of each joint over all frames of ``arrays``, mm.

    Args:
        predict: Batch → poses (B, J, 3), mm.
        arrays: The frames.
        batch_size: Frames per call.
    """
    total = np.zeros(arrays.joints3d.shape[1])
    for pred, target in _root_aligned(predict, arrays, batch_size):
        total += (pred - target).norm(dim=-1).sum(0).numpy()
    return total / len(arrays)


def per_joint_offset(predict: Predictor, arrays: PoseArrays, batch_size: int = 256) -> np.ndarray:
    """(J, 3) mean signed root-aligned error of each joint in the body frame of the truth, mm.

    Axes (right-handed): x towards the subject's right along the true hip line (left hip → right
    hip, made horizontal), z up (world z), y = z × x forward. A systematic offset (e.g. every
    joint too high relative to the root) is a bias that per-frame noise would average out;
    :func:`per_joint_error` cannot tell the two apart.

    Args:
        predict: Batch → poses (B, J, 3), mm, world frame with z up.
        arrays: The frames.
        batch_size: Frames per call.
    """
    total = np.zeros((arrays.joints3d.shape[1], 3))
    for pred, target in _root_aligned(predict, arrays, batch_size):
        total += torch.einsum("bak,bjk->bja", _body_frames(target), pred - target).sum(0).numpy()
    return total / len(arrays)


def mpjpe_without_offset(predict: Predictor, arrays: PoseArrays, offset: np.ndarray,
                         batch_size: int = 256) -> float:
    """Root-aligned MPJPE (mm) after removing a per-joint ``offset`` (J, 3) in the body frame.

    A diagnostic, not a method: with the :func:`per_joint_offset` of the same frames it gives the
    error that would remain if the subject's systematic bias were known (it uses the truth's
    body frame).
    """
    total, bias = 0.0, torch.as_tensor(offset, dtype=torch.float64)
    for pred, target in _root_aligned(predict, arrays, batch_size):
        corrected = pred - torch.einsum("bak,ja->bjk", _body_frames(target), bias)
        total += float((corrected - target).norm(dim=-1).mean(-1).sum())
    return total / len(arrays)


def _body_frames(target: Tensor) -> Tensor:
    """(B, 3, 3) rows x (right, along the hips, horizontal), y = z × x (forward), z (up)."""
    hips = target[:, RIGHT_HIP] - target[:, LEFT_HIP]
    x = torch.nn.functional.normalize(hips * hips.new_tensor([1.0, 1.0, 0.0]), dim=-1)
    z = torch.zeros_like(x)
    z[:, 2] = 1.0
    return torch.stack([x, torch.linalg.cross(z, x), z], dim=1)
