"""Linear (DLT) multi-view triangulation: the classical baseline for multi-view 3D pose."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_energy.energies.cameras import pixels_to_normalised
from lightning_energy.errors import expect_shape


def triangulate_dlt(
    joints2d: Tensor,
    visible: Tensor,
    R: Tensor,
    T: Tensor,
    f: Tensor,
    c: Tensor,
    k: Tensor | None = None,
    p: Tensor | None = None,
    *,
    undistort_iterations: int = 10,
) -> Tensor:
    """Triangulate every joint from its visible views by homogeneous linear least squares.

    Each view v where the joint is visible contributes the two rows ``x·M_v[2] − M_v[0]`` and
    ``y·M_v[2] − M_v[1]`` of the direct linear transform, where (x, y) are the normalised image
    coordinates and ``M_v = [R_v | −R_v T_v]``; invisible views get weight 0. The world frame is
    first centred on the mean camera centre and scaled by the mean camera distance (Hartley
    normalisation), then the right singular vector of the smallest singular value of each
    (2C, 4) system is taken (one batched SVD over all samples and joints).

    Distortion: with ``k``/``p`` given, the detections are undistorted first
    (:func:`~lightning_energy.energies.cameras.undistort`, fixed-point iteration); with
    ``k = p = None`` the pinhole model is used and lens distortion is ignored.

    Args:
        joints2d: (B, C, J, 2) detections, pixels (values at invisible entries are ignored).
        visible: (B, C, J) bool, which detections to use.
        R: (B|1, C, 3, 3) world→camera rotations.
        T: (B|1, C, 3) camera centres in the world, mm.
        f: (B|1, C, 2) focal lengths, pixels.
        c: (B|1, C, 2) principal points, pixels.
        k: (B|1, C, 3) radial distortion, or None.
        p: (B|1, C, 2) tangential distortion, or None.
        undistort_iterations: Fixed-point iterations of the undistortion.

    Returns:
        (B, J, 3) world points, mm; NaN for joints visible in fewer than 2 views.

    Example:
        >>> from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
        >>> batch = generate_synthetic_poses(4, seed=0, noise_px=0.0).to_batch(dtype=torch.float64)
        >>> X = triangulate_dlt(batch.joints2d, batch.visible, batch.R, batch.T, batch.f,
        ...     batch.c, batch.k, batch.p)
        >>> bool((X[:, 0] - batch.joints3d[:, 0]).abs().max() < 1e-3)
        True
    """
    b, num_views, j = visible.shape
    expect_shape("joints2d", joints2d, (b, num_views, j, 2))
    expect_shape("R", R, ("B", num_views, 3, 3))
    xy = pixels_to_normalised(joints2d, f, c, k, p, undistort_iterations)
    weight = visible.to(xy.dtype)
    xy = torch.where(visible.unsqueeze(-1), xy, torch.zeros_like(xy))
    centre = T.mean(dim=-2, keepdim=True)  # (B|1, 1, 3)
    scale = (T - centre).norm(dim=-1).mean(dim=-1)  # (B|1,)
    # M_v maps normalised world points (P − centre) / scale to camera coordinates.
    M = torch.cat(((R * scale[:, None, None, None]), (R @ (centre - T).unsqueeze(-1))), dim=-1)
    M = M.unsqueeze(-3)  # (B|1, C, 1, 3, 4)
    rows = xy.unsqueeze(-1) * M[..., 2:3, :] - M[..., :2, :]  # (B, C, J, 2, 4)
    rows = rows * weight[..., None, None]
    A = rows.permute(0, 2, 1, 3, 4).reshape(b, j, 2 * num_views, 4)
    null = torch.linalg.svd(A, full_matrices=2 * num_views < 4).Vh[..., -1, :]  # (B, J, 4)
    points = null[..., :3] / null[..., 3:] * scale[:, None, None] + centre
    enough = visible.sum(dim=1) >= 2  # (B, J)
    return torch.where(enough.unsqueeze(-1), points, torch.full_like(points, float("nan")))
