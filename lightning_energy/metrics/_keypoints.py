"""2D keypoint metrics: per-batch statistics shared by the classes, and the functional twins.

The twins are public as :func:`lightning_energy.metrics.functional.keypoint_error` and
:func:`lightning_energy.metrics.functional.left_right_swap_rate`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightning_energy.datasets.pose_batch import LEFT_RIGHT_PAIRS
from lightning_energy.errors import ShapeError, describe, expect_shape
from lightning_energy.metrics._checks import _check_same_shape


def _check_keypoints(pred: Tensor, target: Tensor, visible: Tensor | None) -> Tensor:
    """Validate (B, J, 2) keypoints; return the visibility mask as (B, J) bool."""
    expect_shape("pred", pred, ("B", "J", 2))
    expect_shape("target", target, ("B", "J", 2))
    _check_same_shape("pred", pred, "target", target)
    batch, joints = pred.shape[:2]
    if visible is None:
        return torch.ones(batch, joints, dtype=torch.bool, device=pred.device)
    if visible.dtype != torch.bool or visible.shape != (batch, joints):
        raise ShapeError(
            f"Expected `visible` of shape (B, J) = ({batch}, {joints}) and dtype torch.bool, "
            f"got {describe(visible)}."
        )
    return visible


def _check_pairs(pairs: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Validate (right, left) index pairs; return them as a tuple of int pairs."""
    try:
        checked = tuple((int(right), int(left)) for right, left in pairs)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"Expected `pairs` as a sequence of (right, left) ints, got {pairs}."
        ) from err
    if not checked or min(min(pair) for pair in checked) < 0:
        raise ValueError(f"Expected `pairs` as a non-empty sequence of (right, left) joint indices "
                         f"≥ 0, got {pairs}.")
    return checked


def _pair_indices(pairs: Sequence[tuple[int, int]], joints: int, device: torch.device
                  ) -> tuple[Tensor, Tensor]:
    """Each paired joint and its mirror, both directions: two (2P,) index tensors."""
    index = torch.as_tensor(_check_pairs(pairs), dtype=torch.int64, device=device)
    if index.max() >= joints:
        raise ShapeError(f"Expected `pairs` to index the J = {joints} joints of `pred`, "
                         f"got {tuple(pairs)}.")
    return torch.cat([index[:, 0], index[:, 1]]), torch.cat([index[:, 1], index[:, 0]])


def _keypoint_error_update(pred: Tensor, target: Tensor, visible: Tensor | None
                           ) -> tuple[Tensor, Tensor]:
    """Sum of visible joints' Euclidean errors (float64) and their number (int64)."""
    mask = _check_keypoints(pred, target, visible)
    diff = torch.where(mask[..., None], pred.double() - target.double(), 0)
    return torch.linalg.vector_norm(diff, dim=-1).sum(), mask.sum()


def _swap_update(pred: Tensor, target: Tensor, visible: Tensor | None,
                 pairs: Sequence[tuple[int, int]]) -> tuple[Tensor, Tensor]:
    """Number of swapped paired joints and of paired joints counted (both int64).

    A joint counts when it and its mirror are visible; it is swapped when its prediction is
    strictly closer to the mirror's ground truth than to its own.
    """
    mask = _check_keypoints(pred, target, visible)
    own, mirror = _pair_indices(pairs, pred.shape[1], pred.device)
    counted = mask[:, own] & mask[:, mirror]
    pred, target = pred.double()[:, own], target.double()
    to_own = torch.linalg.vector_norm(pred - target[:, own], dim=-1)
    to_mirror = torch.linalg.vector_norm(pred - target[:, mirror], dim=-1)
    swapped = counted & (to_mirror < to_own)
    return swapped.sum(), counted.sum()

def keypoint_error(pred: Tensor, target: Tensor, *, visible: Tensor | None = None) -> Tensor:
    """Mean Euclidean 2D keypoint error over visible joints, in pixels.

    Args:
        pred: Predicted keypoints of shape (B, J, 2), (u, v) pixels.
        target: Ground-truth keypoints of shape (B, J, 2); invisible entries may be NaN.
        visible: Optional bool of shape (B, J); ``False`` joints are not counted.

    Returns:
        A float64 scalar (NaN if no joint is visible).

    Raises:
        ShapeError: If a tensor has the wrong shape or dtype.

    Example:
        >>> import torch
        >>> keypoint_error(torch.tensor([[[3.0, 4.0], [1.0, 0.0]]]), torch.zeros(1, 2, 2))
        tensor(3., dtype=torch.float64)
    """
    error_sum, total = _keypoint_error_update(pred, target, visible)
    return error_sum / total


def left_right_swap_rate(
    pred: Tensor,
    target: Tensor,
    *,
    visible: Tensor | None = None,
    pairs: Sequence[tuple[int, int]] = LEFT_RIGHT_PAIRS,
) -> Tensor:
    """Fraction of paired joints predicted closer to their mirror joint's truth than to their own.

    Each joint of each (right, left) pair counts when both joints of the pair are visible.

    Args:
        pred: Predicted keypoints of shape (B, J, 2).
        target: Ground-truth keypoints of shape (B, J, 2).
        visible: Optional bool of shape (B, J).
        pairs: (right, left) index pairs; default the Human3.6M 17-joint ``LEFT_RIGHT_PAIRS``.

    Returns:
        A float64 scalar: 0 for perfect predictions, 1 for fully mirrored ones (NaN if no pair is
        visible).

    Raises:
        ShapeError: If a tensor has the wrong shape or a pair indexes past J.
        ValueError: If ``pairs`` is empty or malformed.

    Example:
        >>> import torch
        >>> target = torch.tensor([[[0.0, 0.0], [10.0, 0.0]]])
        >>> left_right_swap_rate(target.flip(1), target, pairs=((0, 1),))
        tensor(1., dtype=torch.float64)
    """
    swapped, total = _swap_update(pred, target, visible, pairs)
    return swapped.double() / total
