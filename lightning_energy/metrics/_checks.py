"""Input validation shared by the metric classes and their functional twins (same errors)."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_energy.errors import ShapeError, describe, expect_shape


def _check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ShapeError(
            f"Expected `{name_a}` and `{name_b}` to have the same shape, "
            f"got {describe(a)} and {describe(b)}."
        )


def _check_average(average: str) -> None:
    if average not in ("sequence", "frame"):
        raise ValueError(f"Expected `average` to be 'sequence' or 'frame', got {average!r}.")


def _check_root(root: int | None, num_joints: int | None = None) -> None:
    if root is not None and (isinstance(root, bool) or not isinstance(root, int)):
        raise ValueError(f"Expected `root` to be an int or None, got {root!r}.")
    if root is not None and num_joints is not None and not -num_joints <= root < num_joints:
        raise ShapeError(f"Expected `root` in [-{num_joints}, {num_joints}), got {root}.")


def _check_threshold(threshold: float) -> None:
    if not threshold >= 0:
        raise ValueError(
            f"Expected `threshold` to be a non-negative number of pixels, got {threshold}."
        )


def _check_joints(pred: Tensor, target: Tensor, joint_mask: Tensor | None) -> Tensor:
    """Validate pose inputs; return the joint mask expanded to (B, J) bool."""
    expect_shape("pred", pred, ("B", "J", 3))
    expect_shape("target", target, ("B", "J", 3))
    _check_same_shape("pred", pred, "target", target)
    batch, joints = pred.shape[:2]
    if joint_mask is None:
        return torch.ones(batch, joints, dtype=torch.bool, device=pred.device)
    if joint_mask.dtype != torch.bool or joint_mask.shape not in ((batch, joints), (joints,)):
        raise ShapeError(
            f"Expected `joint_mask` of shape (B, J) = ({batch}, {joints}) or (J,) = ({joints},) "
            f"and dtype torch.bool, got {describe(joint_mask)}."
        )
    return joint_mask.expand(batch, joints)


def _check_boxes(
    pred: Tensor, target: Tensor, valid: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Validate box inputs; return pred, target as (B, T, 4) float64 and valid as (B, T) bool."""
    for name, boxes in (("pred", pred), ("target", target)):
        if boxes.ndim not in (2, 3) or boxes.shape[-1] != 4:
            raise ShapeError(
                f"Expected `{name}` of shape (B, T, 4) or (T, 4), got {describe(boxes)}."
            )
    _check_same_shape("pred", pred, "target", target)
    if valid is None:
        valid = torch.ones(pred.shape[:-1], dtype=torch.bool, device=pred.device)
    if valid.dtype != torch.bool or valid.shape != pred.shape[:-1]:
        want = ", ".join(str(s) for s in pred.shape[:-1])
        raise ShapeError(
            f"Expected `valid` of shape ({want}) and dtype torch.bool, got {describe(valid)}."
        )
    if pred.ndim == 2:
        pred, target, valid = pred[None], target[None], valid[None]
    return pred.double(), target.double(), valid
