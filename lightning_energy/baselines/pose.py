"""Baselines for multi-view 3D pose, evaluated in the same harness as the learned energy.

* :func:`dlt_poses` — linear (DLT) triangulation of the detections (16 detected joints);
* the untrained PPCA energy of Tome et al. — :class:`~lightning_energy.energies.pose.
  MultiViewPoseEnergy` as constructed from ``model_parameters.h5``;
* :func:`load_authors_parameters` — the Wibergian-learning checkpoint loaded into our energy;
* :func:`refit_ppca_model` — PPCA re-fitted in closed form to training poses;
* :func:`grid_search` — prior weight λ and kernel scale δ chosen on a validation subject;
* λ = 0 — ``MultiViewPoseEnergy(prior_weight=0)``.

:func:`evaluate_poses` runs any of them over a :class:`~lightning_energy.data.pose_batch.
PoseArrays` and returns per-frame errors, so tables can be broken down by action.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lightning_energy.data.pose_batch import UNDETECTED_JOINT, PoseArrays, PoseBatch
from lightning_energy.data.ppca import PPCAModel, canonicalise_poses, fit_ppca, load_authors_trained
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.energies.triangulation import triangulate_dlt
from lightning_energy.metrics.functional import _similarity_align

RIGHT_HIP, LEFT_HIP = 1, 4  # in the 17-joint order of ``data.pose_batch.JOINT_NAMES``

#: A predictor maps a batch to poses (B, J, 3), mm, world frame.
Predictor = Callable[[PoseBatch], Tensor]


@dataclass
class FrameErrors:
    """Per-frame errors of one method on one set of frames.

    Attributes:
        mpjpe: (N,) root-aligned MPJPE per frame, mm.
        pa_mpjpe: (N,) Procrustes-aligned MPJPE per frame, mm.
        mpjpe16: (N,) root-aligned MPJPE over the 16 detected joints (no Neck/Nose), mm.
        action: N action names.
        seconds: Wall-clock time of the evaluation.
    """

    mpjpe: np.ndarray
    pa_mpjpe: np.ndarray
    mpjpe16: np.ndarray
    action: list[str]
    seconds: float

    def by_action(self) -> dict[str, tuple[float, float]]:
        """Mean (MPJPE, PA-MPJPE) per action (frames weighted equally within an action)."""
        actions = np.asarray(self.action)
        return {
            a: (float(self.mpjpe[actions == a].mean()), float(self.pa_mpjpe[actions == a].mean()))
            for a in sorted(set(self.action))
        }


def frame_errors(pred: Tensor, target: Tensor, joint_mask: Tensor) -> tuple[Tensor, Tensor]:
    """(B,) MPJPE and (B,) PA-MPJPE per frame, mm, over joints ``joint_mask`` (J,) bool.

    Args:
        pred: (B, J, 3) predicted poses, mm (values at masked-out joints are ignored).
        target: (B, J, 3) ground truth, mm.
        joint_mask: (J,) joints to count (the root, joint 0, is used for alignment).
    """
    pred = torch.where(joint_mask[:, None], torch.nan_to_num(pred), target)
    count = joint_mask.sum()
    root = ((pred - pred[:, :1]) - (target - target[:, :1])).norm(dim=-1)
    mask = joint_mask.expand(pred.shape[0], -1)
    aligned = _similarity_align(pred.double(), target.double(), mask)
    pa = (aligned - target.double()).norm(dim=-1)
    return (root * joint_mask).sum(-1) / count, (pa * joint_mask).sum(-1) / count


def detected_joints(num_joints: int = 17) -> Tensor:
    """(J,) bool: every joint but the undetected Neck/Nose (joint 9)."""
    mask = torch.ones(num_joints, dtype=torch.bool)
    mask[UNDETECTED_JOINT] = False
    return mask


def dlt_poses(batch: PoseBatch) -> Tensor:
    """(B, J, 3) DLT triangulation, mm (NaN where fewer than 2 views see the joint)."""
    b = batch.to(dtype=torch.float64)
    return triangulate_dlt(b.joints2d, b.visible, b.R, b.T, b.f, b.c, b.k, b.p)


def evaluate_poses(
    predict: Predictor,
    arrays: PoseArrays,
    batch_size: int = 512,
    joint_mask: Tensor | None = None,
) -> FrameErrors:
    """Per-frame MPJPE / PA-MPJPE of ``predict`` over all frames of ``arrays`` (no gradients).

    Args:
        predict: Batch → poses (B, J, 3), mm.
        arrays: The frames.
        batch_size: Frames per call.
        joint_mask: (J,) joints to score; default all 17.
    """
    import time

    mask = torch.ones(arrays.joints3d.shape[1], dtype=torch.bool) if joint_mask is None \
        else joint_mask
    start, parts = time.perf_counter(), []
    with torch.no_grad():
        for first in range(0, len(arrays), batch_size):
            batch = arrays.to_batch(np.arange(first, min(first + batch_size, len(arrays))))
            pred, target = predict(batch).double(), batch.joints3d.double()
            root, pa = frame_errors(pred, target, mask)
            root16, _ = frame_errors(pred, target, mask & detected_joints(len(mask)))
            parts.append((root.numpy(), pa.numpy(), root16.numpy()))
    errs, pas, errs16 = (np.concatenate(p) for p in zip(*parts, strict=True))
    return FrameErrors(errs, pas, errs16, list(arrays.action), time.perf_counter() - start)


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


def refit_ppca_model(
    arrays: PoseArrays, num_components: int = 3, num_bases: int = 25, max_poses: int = 20000
) -> PPCAModel:
    """Closed-form PPCA mixture fitted to the canonicalised ground-truth poses of ``arrays``.

    Args:
        arrays: Training frames (only ``joints3d`` is used).
        num_components: Mixture components (k-means clusters).
        num_bases: Bases per component.
        max_poses: Evenly spaced subsample cap (the fit is closed form; this bounds memory).
    """
    step = max(1, math.ceil(len(arrays) / max_poses))
    poses = torch.as_tensor(arrays.joints3d[::step], dtype=torch.float64)
    canonical, _, _ = canonicalise_poses(poses)
    return fit_ppca(canonical, num_bases, num_components)


@torch.no_grad()
def load_authors_parameters(
    energy: MultiViewPoseEnergy, root: str | None = None, model: bool = True
) -> None:
    """Load the Wibergian-learning checkpoint into ``energy`` (3 components, 25 bases).

    What maps, and how (the authors' energy is orthographic with per-view normalised 2D and a
    free 3D pose tied to the PPCA by a model residual; ours is calibrated perspective):

    * μ: the trained mean poses, each rescaled to the norm of the untrained mean (the authors
      solve for a free scale coefficient a0 and normalise the output's limb norm, so the
      absolute size of their μ is arbitrary; component 0's grew about 15×);
    * e: the trained (non-orthonormal) bases, mm per unit coefficient, unchanged;
    * σ: the diagonal of the trained 29 × 29 prior matrix (basis rows), times
      √(λ₀ · 0.75 ir_reg / (10 · 0.75)), its strength relative to the initial λ₀ = 10,
      ir_reg = 1; the off-diagonal entries (≤ 2e-3) are dropped;
    * ω: the trained per-joint, per-axis weights averaged over the two axes and the three
      components, normalised to mean 1 over the 16 detected joints, shared by all cameras.

    Not mapped: the camera multipliers (we use calibrated cameras), the soft-min temperatures
    (we keep the lowest energy), ``lambda_scale``/``hl_params`` (their 2D units differ), and the
    ground-truth limb-length rescaling of their evaluation (never used here).

    With ``model=False`` only the joint weights ω are loaded (the PPCA stays as it is).
    """
    trained = load_authors_trained(root)
    weights = trained.joint_weights.mean(dim=(0, 2))
    mask = detected_joints(weights.shape[0])
    energy.log_weights.copy_((weights / weights[mask].mean()).log().expand_as(energy.log_weights))
    if not model:
        return
    ref = energy.mean.detach().double() * 1000.0
    scale = ref.flatten(1).norm(dim=1) / trained.mean.flatten(1).norm(dim=1)
    diag = torch.diagonal(trained.prior_matrix, dim1=1, dim2=2)[:, 4:].abs().clamp_min(1e-6)
    strength = torch.sqrt(trained.lambda_0 * trained.ir_reg / 10.0)[:, None]
    sigma = diag * strength
    energy.set_model(PPCAModel(trained.mean * scale[:, None, None], trained.bases, sigma,
                               trained.component_scale))


def grid_search(
    make: Callable[[float, float], Predictor],
    arrays: PoseArrays,
    prior_weights: Sequence[float] = (0.1, 1.0, 10.0),
    kernel_scales: Sequence[float] = (1.0, 2.0, 5.0),
) -> tuple[tuple[float, float], dict[tuple[float, float], float]]:
    """Choose (λ_prior, δ) by MPJPE on validation frames.

    Args:
        make: Builds a predictor for (prior_weight, kernel_scale).
        arrays: Validation frames.
        prior_weights: Grid of λ_prior.
        kernel_scales: Grid of δ (units of the energy's ``pixel_scale``).

    Returns:
        ``(best (λ, δ), MPJPE of every grid point)``.
    """
    scores = {}
    for lam, delta in itertools.product(prior_weights, kernel_scales):
        scores[(lam, delta)] = float(evaluate_poses(make(lam, delta), arrays).mpjpe.mean())
    return min(scores, key=scores.__getitem__), scores
