"""The "re-fitted PPCA" baseline: a PPCA mixture fitted in closed form to training poses."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_energy.energies.ppca import PPCAModel, canonicalise_poses
from lightning_energy.errors import ShapeError, expect_shape


def _deterministic_sign(bases: Tensor) -> Tensor:
    """Flip each row so that its largest-magnitude entry is positive."""
    pick = bases.abs().argmax(dim=-1, keepdim=True)
    return bases * torch.sign(bases.gather(-1, pick))


def _pca(flat: Tensor, num_bases: int, dims: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Mean, bases (L, D), sigma (L,) and scale () of one component's (n, D) data."""
    n = flat.shape[0]
    if n <= num_bases:
        raise ValueError(f"A component has {n} poses; need more than num_bases={num_bases}.")
    mean = flat.mean(dim=0)
    _, s, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    eig = s.square() / n
    floor = eig[0].clamp_min(1.0) * 1e-12
    noise = eig[num_bases:dims].sum() / (dims - num_bases)
    sigma = eig[:num_bases].clamp_min(floor).rsqrt()
    return mean, _deterministic_sign(vh[:num_bases]), sigma, noise.clamp_min(floor).rsqrt()


def _kmeans(data: Tensor, k: int, seed: int, iterations: int) -> Tensor:
    """(n,) cluster labels by Lloyd's algorithm from a seeded k-means++ start."""
    gen = torch.Generator().manual_seed(seed)
    centres = data[torch.randint(len(data), (1,), generator=gen)]
    while len(centres) < k:
        d2 = torch.cdist(data, centres).min(dim=1).values.square()
        centres = torch.cat((centres, data[torch.multinomial(d2 + 1e-30, 1, generator=gen)]))
    labels = torch.cdist(data, centres).argmin(dim=1)
    for _ in range(iterations):
        counts = torch.bincount(labels, minlength=k)[:, None]
        sums = torch.zeros_like(centres).index_add(0, labels, data)
        centres = torch.where(counts > 0, sums / counts.clamp_min(1).to(data.dtype), centres)
        new = torch.cdist(data, centres).argmin(dim=1)
        if torch.equal(new, labels):
            break
        labels = new
    return labels


def fit_ppca(
    poses: Tensor,
    num_bases: int,
    num_components: int = 1,
    *,
    seed: int = 0,
    iterations: int = 100,
) -> PPCAModel:
    """Closed-form (maximum-likelihood) PPCA fit, for the "re-fit PPCA" baseline.

    Poses are centred over their joints (as the stored model); pass them through
    :func:`canonicalise_poses` first to remove the global yaw. With ``num_components > 1`` the
    centred poses are clustered by seeded k-means (k-means++ start, Lloyd iterations) and each
    cluster gets its own PCA.

    Per component, with eigenvalues λ_1 ≥ λ_2 ≥ … (mm², biased covariance of the centred,
    flattened poses): bases = the top ``num_bases`` principal directions (orthonormal, sign
    fixed so that the largest entry is positive), ``sigma_l = 1/√λ_l`` (inverse coefficient
    standard deviation) and ``scale = 1/√σ²`` with the PPCA noise variance
    σ² = mean of λ_{L+1} … λ_{3J−3} (centring leaves 3J − 3 degrees of freedom). Eigenvalues are
    floored at 1e-12 · max(λ_1, 1) so that exactly low-rank data gives finite values.

    Args:
        poses: (N, J, 3) poses, mm.
        num_bases: Bases per component L, below 3J − 3.
        num_components: Mixture components M.
        seed: Seed of the k-means start.
        iterations: Maximum Lloyd iterations.

    Returns:
        The fitted :class:`PPCAModel`, in the dtype of ``poses``.

    Example:
        >>> from lightning_energy.datasets.pose_synthetic import tiny_pose_model
        >>> model = tiny_pose_model()
        >>> poses = model.reconstruct(torch.randn(500, model.num_bases, dtype=torch.float64)
        ...     * model.coefficient_std[0], torch.zeros(500, dtype=torch.long))
        >>> fit_ppca(poses, num_bases=3).bases.shape
        torch.Size([1, 3, 17, 3])
    """
    expect_shape("poses", poses, ("N", "J", 3))
    n, j, _ = poses.shape
    dims = 3 * j - 3
    if not 0 < num_bases < dims:
        raise ShapeError(f"Expected 0 < `num_bases` < {dims} for {j} joints, got {num_bases}.")
    if not 0 < num_components <= n:
        raise ValueError(f"Expected 0 < `num_components` <= {n} poses, got {num_components}.")
    flat = (poses - poses.mean(dim=-2, keepdim=True)).reshape(n, -1).to(torch.float64)
    labels = (
        torch.zeros(n, dtype=torch.long)
        if num_components == 1
        else _kmeans(flat, num_components, seed, iterations)
    )
    parts = [_pca(flat[labels == m], num_bases, dims) for m in range(num_components)]
    mean, bases, sigma, scale = (torch.stack(t) for t in zip(*parts, strict=True))
    return PPCAModel(
        mean=mean.reshape(num_components, j, 3),
        bases=bases.reshape(num_components, num_bases, j, 3),
        sigma=sigma,
        scale=scale,
    ).to(dtype=poses.dtype)


def refit_ppca_model(
    poses: Tensor, num_components: int = 3, num_bases: int = 25, max_poses: int = 20000
) -> PPCAModel:
    """Closed-form PPCA mixture fitted to canonicalised ground-truth world poses.

    Args:
        poses: (N, J, 3) training poses, mm, world frame (z up).
        num_components: Mixture components (k-means clusters).
        num_bases: Bases per component.
        max_poses: Evenly spaced subsample cap (the fit is closed form; this bounds memory).
    """
    step = max(1, math.ceil(len(poses) / max_poses))
    canonical, _, _ = canonicalise_poses(torch.as_tensor(poses[::step], dtype=torch.float64))
    return fit_ppca(canonical, num_bases, num_components)
