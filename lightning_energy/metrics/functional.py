"""Functional twins of the metric classes, and the per-batch statistics the classes accumulate.

Every public function validates its inputs exactly as the matching class's ``update`` does (both use
the same private validation and update helpers), so a malformed tensor raises the same
:class:`~lightning_energy.errors.ShapeError` from either. Statistics are reduced to sums and counts
in float64 / int64, which is what makes the classes exact under DDP.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lightning_energy.errors import ShapeError, describe, expect_shape
from lightning_energy.metrics._boxes import (
    _box_iou,
    _frame_mask,
    _precision_scores,
    _sequence_compute,
    _sequence_update,
    _success_scores,
)
from lightning_energy.metrics._checks import (
    _check_average,
    _check_boxes,
    _check_joints,
    _check_root,
    _check_same_shape,
    _check_threshold,
)

# The 2D keypoint twins live beside their helpers (this module stays under ~400 lines).
from lightning_energy.metrics._keypoints import keypoint_error as keypoint_error
from lightning_energy.metrics._keypoints import left_right_swap_rate as left_right_swap_rate

Average = Literal["sequence", "frame"]


# ----------------------------------------------------------------------------- pose


def _mpjpe_update(
    pred: Tensor, target: Tensor, root: int | None, joint_mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Sum of root-relative joint errors (float64) and number of joints counted (int64)."""
    mask = _check_joints(pred, target, joint_mask)
    _check_root(root, pred.shape[1])
    if root is not None:
        pred = pred - pred[:, root, None]
        target = target - target[:, root, None]
    diff = torch.where(mask[..., None], pred - target, 0)
    error = torch.linalg.vector_norm(diff, dim=-1)
    return error.sum(dtype=torch.float64), mask.sum()


def mpjpe(
    pred: Tensor, target: Tensor, root: int | None = 0, *, joint_mask: Tensor | None = None
) -> Tensor:
    """Mean per-joint position error, Human3.6M protocol #1.

    Both poses are made root-relative by subtracting joint ``root`` (the pelvis, index 0, in the
    Human3.6M 17-joint layout); then the Euclidean distance is averaged over joints and samples.
    The root joint itself (error 0 after alignment) is counted in the mean, as in the protocol.

    Args:
        pred: Predicted poses of shape (B, J, 3), in mm.
        target: Ground-truth poses of shape (B, J, 3), in mm.
        root: Index of the root joint; ``None`` compares absolute positions.
        joint_mask: Optional bool mask of shape (B, J) or (J,); ``False`` joints are excluded from
            the mean (e.g. undetected joints). The root is still used for alignment.

    Returns:
        A scalar in the dtype of ``pred`` (NaN if no joint is counted).

    Raises:
        ShapeError: If a tensor has the wrong shape or ``root`` is out of range.

    Example:
        >>> import torch
        >>> target = torch.zeros(1, 2, 3)
        >>> pred = torch.tensor([[[10.0, 0.0, 0.0], [10.0, 3.0, 4.0]]])
        >>> mpjpe(pred, target)
        tensor(2.5000)
        >>> mpjpe(pred, target, root=None)
        tensor(10.5902)
    """
    total, count = _mpjpe_update(pred, target, root, joint_mask)
    return (total / count).to(pred.dtype)


def similarity_align(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Batched weighted Umeyama: the similarity transform of ``pred`` closest to ``target``.

    The alignment behind :func:`pa_mpjpe` (rotation with reflection correction, uniform scale,
    translation), for diagnostics that need the aligned poses themselves.

    Args:
        pred: (B, J, 3) float64.
        target: (B, J, 3) float64.
        mask: (B, J) bool; only these joints define the alignment.

    Returns:
        ``scale * (pred - mu_pred) @ rot + mu_target`` of shape (B, J, 3), rot a proper rotation.
    """
    weights = mask[..., None]
    count = weights.sum(1, keepdim=True).clamp_min(1)
    mu_pred = torch.where(weights, pred, 0).sum(1, keepdim=True) / count
    mu_target = torch.where(weights, target, 0).sum(1, keepdim=True) / count
    pred0 = torch.where(weights, pred - mu_pred, 0)
    target0 = torch.where(weights, target - mu_target, 0)
    u, sigma, vh = torch.linalg.svd(pred0.transpose(1, 2) @ target0)
    reflect = torch.where(torch.linalg.det(u @ vh) < 0, -1.0, 1.0).to(sigma)
    fix = torch.cat([torch.ones_like(sigma[:, :2]), reflect[:, None]], dim=1)
    rot = (u * fix[:, None, :]) @ vh
    norm2 = pred0.square().sum((1, 2)).clamp_min(torch.finfo(pred0.dtype).tiny)
    scale = (sigma * fix).sum(1) / norm2
    return scale[:, None, None] * (pred - mu_pred) @ rot + mu_target


def _pa_mpjpe_update(
    pred: Tensor, target: Tensor, joint_mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Sum of Procrustes-aligned joint errors (float64) and number of joints counted (int64)."""
    mask = _check_joints(pred, target, joint_mask)
    target = target.double()
    aligned = similarity_align(pred.double(), target, mask)
    diff = torch.where(mask[..., None], aligned - target, 0)
    return torch.linalg.vector_norm(diff, dim=-1).sum(), mask.sum()


def pa_mpjpe(pred: Tensor, target: Tensor, *, joint_mask: Tensor | None = None) -> Tensor:
    """Procrustes-aligned mean per-joint position error, Human3.6M protocol #2.

    Each predicted pose is aligned to its target by the similarity transform (rotation with
    reflection correction, uniform scale, translation) minimising the squared joint error, solved
    in closed form (Umeyama) with one batched SVD in float64; the mean joint error follows.

    Args:
        pred: Predicted poses of shape (B, J, 3), in mm.
        target: Ground-truth poses of shape (B, J, 3), in mm.
        joint_mask: Optional bool mask of shape (B, J) or (J,); ``False`` joints take part in
            neither the alignment nor the mean.

    Returns:
        A scalar in the dtype of ``pred`` (NaN if no joint is counted).

    Raises:
        ShapeError: If a tensor has the wrong shape.

    Example:
        >>> import torch
        >>> target = torch.tensor([[[0.0, 0, 0], [100, 0, 0], [0, 200, 0], [0, 0, 300]]])
        >>> rot = torch.tensor([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]])
        >>> pred = 0.5 * target @ rot + 40.0
        >>> pa_mpjpe(pred, target).abs() < 1e-3
        tensor(True)
    """
    total, count = _pa_mpjpe_update(pred, target, joint_mask)
    return (total / count).to(pred.dtype)


def body_frame_errors(pred: Tensor, target: Tensor, root: int = 0, right_hip: int = 1,
                      left_hip: int = 4) -> Tensor:
    """(B, J, 3) root-aligned errors pred − target in the truth's body frame, float64, mm.

    Body frame (rows): x along the true hip line (left → right hip, made horizontal), z up
    (the input's z), y = z × x forward. Averaged over frames, these are the per-joint biases
    behind :func:`systematic_offset`.

    Example:
        >>> import torch
        >>> target = torch.zeros(1, 5, 3)
        >>> target[0, 1, 1], target[0, 4, 1] = 100.0, -100.0  # hips along world y
        >>> pred = target.clone()
        >>> pred[0, 2, 1] += 10.0  # 10 mm towards the right hip: body x
        >>> body_frame_errors(pred, target)[0, 2]
        tensor([10.,  0.,  0.], dtype=torch.float64)
    """
    _check_joints(pred, target, None)
    joints = pred.shape[1]
    for name, index in (("root", root), ("right_hip", right_hip), ("left_hip", left_hip)):
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError(f"Expected `{name}` to be an int, got {index!r}.")
        if not -joints <= index < joints:
            raise ShapeError(f"Expected `{name}` in [-{joints}, {joints}), got {index}.")
    pred, target = pred.double(), target.double()
    error = (pred - pred[:, root, None]) - (target - target[:, root, None])
    hips = target[:, right_hip] - target[:, left_hip]
    x = torch.nn.functional.normalize(hips * hips.new_tensor([1.0, 1.0, 0.0]), dim=-1)
    z = torch.zeros_like(x)
    z[:, 2] = 1.0
    frames = torch.stack([x, torch.linalg.cross(z, x), z], dim=1)  # (B, 3, 3)
    return torch.einsum("bak,bjk->bja", frames, error)


def _systematic_offset_compute(errors: Tensor, remainder: bool) -> Tensor:
    """Mean ‖bias_j‖ over joints of body-frame errors (N, J, 3), or the MPJPE left without it.

    bias_j is joint j's mean error over the N frames.
    """
    bias = errors.mean(0)
    if remainder:
        return torch.linalg.vector_norm(errors - bias, dim=-1).mean()
    return torch.linalg.vector_norm(bias, dim=-1).mean()


def systematic_offset(pred: Tensor, target: Tensor, root: int = 0, right_hip: int = 1,
                      left_hip: int = 4, *, remainder: bool = False) -> Tensor:
    """How much of the root-aligned error is one bias shared by all frames, in mm.

    Each joint's root-aligned error is expressed in the truth's body frame (x right along the
    hips, y forward, z up) and averaged over the frames: a per-joint bias (the body sitting too
    high, a joint systematically forward) that per-frame noise does not explain. Returns the
    mean over joints of that bias's norm, or with ``remainder`` the MPJPE that is left once each
    joint's bias is subtracted — a diagnostic, not a method: the bias is the test set's own.

    Args:
        pred: Predicted poses (B, J, 3), mm, z up.
        target: Ground-truth poses (B, J, 3), mm, z up.
        root: Root joint for alignment (0 = pelvis in the Human3.6M 17-joint layout).
        right_hip: Right hip joint (1 in that layout).
        left_hip: Left hip joint (4 in that layout).
        remainder: Return the MPJPE without the bias instead of the bias.

    Returns:
        A float64 scalar.

    Example:
        >>> import torch
        >>> target = torch.zeros(2, 5, 3)
        >>> target[:, 1, 0], target[:, 4, 0] = 100.0, -100.0  # right and left hip
        >>> pred = target.clone()
        >>> pred[:, 2, 2] += 20.0  # joint 2 sits 20 mm too high in both frames
        >>> pred[0, 3, 0], pred[1, 3, 0] = 5.0, -5.0  # joint 3: noise, no bias
        >>> systematic_offset(pred, target)  # (20 + 0) / 5 joints
        tensor(4., dtype=torch.float64)
        >>> systematic_offset(pred, target, remainder=True)  # the noise is left: 5 / 5 joints
        tensor(1., dtype=torch.float64)
    """
    return _systematic_offset_compute(body_frame_errors(pred, target, root, right_hip,
                                                        left_hip), remainder)


# ----------------------------------------------------------------------------- tracking


def _tracking_metric(
    scores: Tensor, target: Tensor, valid: Tensor, average: str, skip_first: bool
) -> Tensor:
    stats = _sequence_update(scores, _frame_mask(target, valid, skip_first))
    return _sequence_compute(*stats, average=average)


def box_iou(pred: Tensor, target: Tensor) -> Tensor:
    """Element-wise IoU of boxes ``(x, y, w, h)`` of the same shape (…, 4).

    Continuous areas; a non-finite (missing) ``pred`` box scores 0.

    Example:
        >>> import torch
        >>> box_iou(torch.tensor([0.0, 0.0, 2.0, 2.0]), torch.tensor([1.0, 0.0, 2.0, 2.0]))
        tensor(0.3333)
    """
    _check_same_shape("pred", pred, "target", target)
    if pred.shape[-1:] != (4,):
        raise ShapeError(f"Expected `pred` of shape (..., 4), got {describe(pred)}.")
    return _box_iou(pred, target)


def success_auc(
    pred: Tensor,
    target: Tensor,
    *,
    valid: Tensor | None = None,
    average: Average = "sequence",
    skip_first: bool = False,
) -> Tensor:
    """Area under the OTB success plot (one-pass evaluation).

    A frame succeeds at threshold t when its IoU is strictly greater than t; the success rate is
    computed at the 21 thresholds 0, 0.05, …, 1 and the AUC is their mean (so its maximum is
    20/21, since IoU > 1 never holds). IoU uses continuous areas w * h, which equals the OTB
    toolkit's ``calcRectInt`` (its -1 / +1 pixel offsets cancel).

    Ground-truth frames that are non-finite or have w <= 0 or h <= 0 (e.g. 0, 0, 0, 0 rows) are
    excluded, as are frames where ``valid`` is False. A predicted box with a NaN / inf coordinate
    scores IoU 0; the OTB toolkit instead substitutes the previous box, a data-loading concern.

    Args:
        pred: Predicted boxes x, y, w, h (top-left corner, pixels) of shape (B, T, 4) or (T, 4).
        target: Ground-truth boxes, same shape.
        valid: Optional bool mask of shape (B, T) or (T,), e.g. to ignore padding.
        average: ``"sequence"`` (OTB: AUC per sequence, then the mean over sequences with at least
            one valid frame) or ``"frame"`` (all valid frames pooled).
        skip_first: Exclude frame 0 (the initialisation frame). OTB's OPE includes it.

    Returns:
        A float64 scalar in [0, 20/21] (NaN if no frame is valid).

    Raises:
        ShapeError: If a tensor has the wrong shape or ``valid`` is not bool.

    Example:
        >>> import torch
        >>> target = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
        >>> pred = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5]])
        >>> success_auc(pred, target)  # (20/21 + 10/21) / 2
        tensor(0.7143, dtype=torch.float64)
    """
    _check_average(average)
    pred, target, valid = _check_boxes(pred, target, valid)
    return _tracking_metric(_success_scores(pred, target), target, valid, average, skip_first)


def precision_at_pixels(
    pred: Tensor,
    target: Tensor,
    threshold: float = 20.0,
    *,
    valid: Tensor | None = None,
    average: Average = "sequence",
    skip_first: bool = False,
) -> Tensor:
    """OTB precision: fraction of valid frames whose centre-location error is <= ``threshold``.

    Box centres are x + w/2, y + h/2; the toolkit's x + (w - 1)/2 gives the same distances. A
    predicted box with a NaN / inf coordinate has centre error infinity. Frame validity,
    ``average`` and ``skip_first`` are as in :func:`success_auc`.

    Args:
        pred: Predicted boxes x, y, w, h of shape (B, T, 4) or (T, 4).
        target: Ground-truth boxes, same shape.
        threshold: Centre-error threshold in pixels (OTB reports 20).
        valid: Optional bool mask of shape (B, T) or (T,).
        average: ``"sequence"`` or ``"frame"``.
        skip_first: Exclude frame 0.

    Returns:
        A float64 scalar in [0, 1] (NaN if no frame is valid).

    Raises:
        ShapeError: If a tensor has the wrong shape.
        ValueError: If ``threshold`` is negative.

    Example:
        >>> import torch
        >>> target = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
        >>> pred = torch.tensor([[3.0, 4, 10, 10], [30, 0, 10, 10]])
        >>> precision_at_pixels(pred, target, threshold=5.0)
        tensor(0.5000, dtype=torch.float64)
    """
    _check_average(average)
    _check_threshold(threshold)
    pred, target, valid = _check_boxes(pred, target, valid)
    scores = _precision_scores(pred, target, threshold)
    return _tracking_metric(scores, target, valid, average, skip_first)


def mean_iou(
    pred: Tensor,
    target: Tensor,
    *,
    valid: Tensor | None = None,
    average: Average = "sequence",
    skip_first: bool = False,
) -> Tensor:
    """Mean IoU of axis-aligned x, y, w, h boxes over valid frames.

    IoU, frame validity, ``average`` and ``skip_first`` are as in :func:`success_auc`.

    Args:
        pred: Predicted boxes x, y, w, h of shape (B, T, 4) or (T, 4).
        target: Ground-truth boxes, same shape.
        valid: Optional bool mask of shape (B, T) or (T,).
        average: ``"sequence"`` or ``"frame"``.
        skip_first: Exclude frame 0.

    Returns:
        A float64 scalar in [0, 1] (NaN if no frame is valid).

    Raises:
        ShapeError: If a tensor has the wrong shape.

    Example:
        >>> import torch
        >>> target = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
        >>> pred = torch.tensor([[5.0, 0, 10, 10], [0, 0, 10, 5]])
        >>> mean_iou(pred, target)  # (1/3 + 1/2) / 2
        tensor(0.4167, dtype=torch.float64)
    """
    _check_average(average)
    pred, target, valid = _check_boxes(pred, target, valid)
    return _tracking_metric(_box_iou(pred, target), target, valid, average, skip_first)


# ----------------------------------------------------------------------------- convergence


def _convergence_update(
    converged: Tensor, num_steps: Tensor, grad_norm: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Converged count, total, step sum, step max, grad-norm sum (float64), grad-norm count."""
    expect_shape("converged", converged, ("B",))
    if converged.dtype != torch.bool:
        raise ShapeError(f"Expected `converged` of dtype torch.bool, got {describe(converged)}.")
    _check_same_shape("num_steps", num_steps, "converged", converged)
    if num_steps.is_floating_point() or num_steps.is_complex() or num_steps.dtype == torch.bool:
        raise ShapeError(f"Expected `num_steps` of an integer dtype, got {describe(num_steps)}.")
    steps = num_steps.long()
    steps_max = steps.max() if steps.numel() else steps.new_zeros(())
    if grad_norm is None:
        grad_sum, grad_count = converged.new_zeros((), dtype=torch.float64), steps.new_zeros(())
    else:
        _check_same_shape("grad_norm", grad_norm, "converged", converged)
        grad_sum, grad_count = (
            grad_norm.sum(dtype=torch.float64),
            steps.new_tensor(grad_norm.numel()),
        )
    total = steps.new_tensor(converged.numel())
    return converged.sum(), total, steps.sum(), steps_max, grad_sum, grad_count


def _convergence_compute(
    num_converged: Tensor,
    total: Tensor,
    steps_sum: Tensor,
    steps_max: Tensor,
    grad_norm_sum: Tensor,
    grad_norm_count: Tensor,
) -> dict[str, Tensor]:
    return {
        "converged": num_converged.double() / total,
        "steps_mean": steps_sum.double() / total,
        "steps_max": steps_max.double(),
        "grad_norm_mean": grad_norm_sum / grad_norm_count,
    }


def solver_convergence(
    converged: Tensor, num_steps: Tensor, grad_norm: Tensor | None = None
) -> dict[str, Tensor]:
    """Convergence statistics of a batch of inner solves (e.g. from a ``Solution``).

    Args:
        converged: Per-sample convergence flags of shape (B,), bool.
        num_steps: Per-sample solver step counts of shape (B,), integer dtype.
        grad_norm: Optional per-sample final gradient norms of shape (B,), float. Non-finite
            values (diverged solves) propagate into ``"grad_norm_mean"``.

    Returns:
        Float64 scalars ``{"converged": fraction, "steps_mean", "steps_max", "grad_norm_mean"}``;
        ``"grad_norm_mean"`` is NaN when no gradient norm was given.

    Raises:
        ShapeError: If a tensor has the wrong shape or dtype.

    Example:
        >>> import torch
        >>> converged = torch.tensor([True, True, False, True])
        >>> grad_norm = torch.tensor([1e-7, 2e-7, 0.5, 1e-7])
        >>> out = solver_convergence(converged, torch.tensor([3, 5, 50, 4]), grad_norm)
        >>> [round(out[key].item(), 2) for key in ("converged", "steps_mean", "steps_max")]
        [0.75, 15.5, 50.0]
    """
    return _convergence_compute(*_convergence_update(converged, num_steps, grad_norm))

