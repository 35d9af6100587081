"""Heatmap supervision: Gaussian targets and the loss that trains the soft-argmax distribution.

Coordinates follow :mod:`lightning_energy.networks.heads`: keypoints in input pixels, heatmap cell
(r, c) of stride s centred at ((c + 0.5)·s, (r + 0.5)·s).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightning_energy.errors import ShapeError, describe, expect_shape
from lightning_energy.networks.heads import cell_centres


def _check_keypoints(keypoints: Tensor, visible: Tensor) -> None:
    expect_shape("keypoints", keypoints, ("N", "J", 2))
    if visible.dtype != torch.bool or visible.shape != keypoints.shape[:2]:
        want = ", ".join(str(s) for s in keypoints.shape[:2])
        raise ShapeError(
            f"Expected `visible` of shape ({want}) and dtype torch.bool, got {describe(visible)}."
        )


def heatmap_targets(
    keypoints: Tensor, visible: Tensor, size: tuple[int, int], stride: int, sigma: float
) -> Tensor:
    """Gaussian heatmap targets, exp(−‖centre(r, c) − keypoint‖² / (2 sigma²)), peak ≤ 1.

    Args:
        keypoints: (u, v) input-pixel coordinates of shape (N, J, 2); entries of invisible joints
            are ignored (they may be NaN).
        visible: Bool of shape (N, J); invisible joints get an all-zero map.
        size: Heatmap size (H, W).
        stride: Input pixels per heatmap cell.
        sigma: Standard deviation of the Gaussian in input pixels.

    Returns:
        Targets of shape (N, J, H, W) in the keypoints' dtype.

    Raises:
        ShapeError: If ``keypoints`` or ``visible`` has the wrong shape or dtype.
        ValueError: If ``sigma`` is not positive.

    Example:
        >>> import torch
        >>> target = heatmap_targets(
        ...     torch.tensor([[[5.0, 3.0]]]), torch.tensor([[True]]), (4, 4), stride=2, sigma=1.0
        ... )
        >>> target.shape, target[0, 0, 1, 2]  # the cell centred on (5, 3)
        (torch.Size([1, 1, 4, 4]), tensor(1.))
    """
    _check_keypoints(keypoints, visible)
    if not sigma > 0:
        raise ValueError(f"Expected `sigma` to be a positive number of pixels, got {sigma}.")
    h, w = size
    points = torch.where(visible[..., None], keypoints, torch.zeros_like(keypoints))
    u, v = cell_centres(w, stride, points), cell_centres(h, stride, points)
    gauss_u = torch.exp(-0.5 * ((u - points[..., 0, None]) / sigma) ** 2)  # (N, J, W)
    gauss_v = torch.exp(-0.5 * ((v - points[..., 1, None]) / sigma) ** 2)  # (N, J, H)
    target = gauss_v[..., :, None] * gauss_u[..., None, :]
    return target * visible[..., None, None].to(target.dtype)


def _inside(keypoints: Tensor, size: tuple[int, int], stride: int) -> Tensor:
    """(N, J) bool: keypoint within the area [0, W·stride) × [0, H·stride) the heatmap covers."""
    h, w = size
    u, v = keypoints[..., 0], keypoints[..., 1]
    return (u >= 0) & (u < w * stride) & (v >= 0) & (v < h * stride)


def heatmap_loss(
    heatmaps: Sequence[Tensor],
    keypoints: Tensor,
    visible: Tensor,
    stride: int,
    sigma: float,
    beta: float = 1.0,
) -> Tensor:
    """KL divergence from the normalised Gaussian target to the spatial softmax, mean over stacks.

    For each stack, joint and sample: KL(q ‖ p) with q the Gaussian target of
    :func:`heatmap_targets` normalised to sum 1 and p = softmax(beta · heatmap) over the cells —
    the distribution whose mean :func:`~lightning_energy.networks.heads.soft_argmax` returns. It is
    the cross-entropy of p against q minus q's (constant) entropy, so its gradients are those of
    the cross-entropy and it is 0 for a perfect map. Averaged over the joints that count (visible
    and inside the heatmap's area), then over stacks.

    Why not MSE on peak-1 Gaussians (Newell et al.): MSE fits the logits' values, not the
    softmax; a map with a perfect peak but a flat background of logit 0 spreads most of the
    softmax mass over the background, which pulls the soft-argmax to the map's centre. The
    cross-entropy supervises exactly the distribution whose mean and window mass are the
    keypoint and the confidence, background mass included.

    Args:
        heatmaps: Heatmap logits of every stack, each of shape (N, J, H, W).
        keypoints: Target (u, v) in input pixels of shape (N, J, 2).
        visible: Bool of shape (N, J); invisible joints (and joints outside the heatmap's area)
            do not count.
        stride: Input pixels per heatmap cell.
        sigma: Target Gaussian's standard deviation in input pixels.
        beta: Inverse temperature of the softmax; pass the detector's ``beta``.

    Returns:
        A scalar in float32 (or the heatmaps' dtype if wider); 0 when no joint counts.

    Raises:
        ShapeError: If a tensor has the wrong shape.
        ValueError: If ``heatmaps`` is empty or ``sigma`` is not positive.

    Example:
        >>> import torch
        >>> keypoints, visible = torch.tensor([[[5.0, 3.0]]]), torch.tensor([[True]])
        >>> target = heatmap_targets(keypoints, visible, (4, 4), stride=2, sigma=1.0)
        >>> heatmap_loss([target.log()], keypoints, visible, stride=2, sigma=1.0).abs() < 1e-6
        tensor(True)
    """
    if len(heatmaps) == 0:
        raise ValueError("Expected at least one heatmap tensor in `heatmaps`, got none.")
    losses = [_stack_loss(h, keypoints, visible, stride, sigma, beta) for h in heatmaps]
    return torch.stack(losses).mean()


def _stack_loss(
    heatmap: Tensor, keypoints: Tensor, visible: Tensor, stride: int, sigma: float, beta: float
) -> Tensor:
    expect_shape("heatmaps[k]", heatmap, (*keypoints.shape[:2], "H", "W"))
    if heatmap.dtype in (torch.float16, torch.bfloat16):
        heatmap = heatmap.float()
    size = (heatmap.shape[-2], heatmap.shape[-1])
    counted = visible & _inside(keypoints, size, stride)
    target = heatmap_targets(keypoints.to(heatmap.dtype), counted, size, stride, sigma)
    q = target.flatten(2)
    q = q / q.sum(-1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
    log_p = torch.log_softmax(beta * heatmap.flatten(2), dim=-1)
    kl = (torch.xlogy(q, q) - q * log_p).sum(-1)  # (N, J); 0 for joints that do not count
    return kl.sum() / counted.sum().clamp_min(1)
