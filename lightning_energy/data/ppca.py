"""The probabilistic-PCA 3D pose model (Tome et al.) and the Wibergian-learning trained weights.

Frames and units: poses are joint-major tensors (…, J, 3) in millimetres. The PPCA model lives in
a *canonical* frame: centred (the per-coordinate mean over joints is 0), z up, x from left to
right (right-side joints at +x), y forward. The files store poses coordinate-major as (3, 17);
the loaders transpose them to (17, 3).

Mapping of ``sigma`` (checked on Human3.6M S1–S8 canonicalised with :func:`canonicalise_poses`,
each pose assigned to its best component): ``sigma[m, l]`` ≈ 1 / (standard deviation, mm, of
coefficient l of component m) — the product has median 1.02 and lies in [0.8, 1.25] for 62 of
the 75 bases of the 3-component file — and ``scale[m]`` ≈ 1 / (standard deviation, mm, of the
residual per coordinate) (products 0.84–0.92). :func:`fit_ppca` uses exactly this mapping; a
one-component re-fit on S1–S8 gives sigma 0.0019, 0.0030, 0.0040, … and scale 0.058, against
0.0018, 0.0032, 0.0040, … and 0.057 for the file's first component.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lightning_energy.errors import DatasetNotFoundError, ShapeError, expect_shape

#: Default root of the PPCA files, relative to the working directory (the repository root).
DEFAULT_PPCA_ROOT = "../shared/data/wibergian_ppca"


@dataclass
class PPCAModel:
    """A mixture of PPCA pose models in the canonical frame.

    Attributes:
        mean: (M, J, 3) mean pose of each component, mm, centred over joints.
        bases: (M, L, J, 3) basis poses; each component's L flattened bases are orthonormal
            (unitless: a coefficient in mm times a basis gives mm).
        sigma: (M, L) prior weights, mm⁻¹: ≈ 1 / standard deviation of each coefficient.
        scale: (M,) component scale, mm⁻¹: ≈ 1 / residual standard deviation per coordinate;
            the Wibergian-learning energy uses it as the base weight of the reprojection term.

    Example:
        >>> from lightning_energy.data.pose_synthetic import tiny_pose_model
        >>> model = tiny_pose_model()
        >>> coefficients = torch.zeros(2, model.num_bases, dtype=torch.float64)
        >>> pose = model.reconstruct(coefficients, torch.zeros(2, dtype=torch.long))
        >>> tuple(pose.shape)
        (2, 17, 3)
    """

    mean: Tensor
    bases: Tensor
    sigma: Tensor
    scale: Tensor

    def __post_init__(self) -> None:
        m, j, _ = self.mean.shape
        expect_shape("mean", self.mean, (m, j, 3))
        expect_shape("bases", self.bases, (m, "L", j, 3))
        expect_shape("sigma", self.sigma, (m, self.bases.shape[1]))
        expect_shape("scale", self.scale, (m,))

    @property
    def num_components(self) -> int:
        """Number of mixture components M."""
        return int(self.mean.shape[0])

    @property
    def num_bases(self) -> int:
        """Number of basis poses L per component."""
        return int(self.bases.shape[1])

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return int(self.mean.shape[1])

    @property
    def coefficient_std(self) -> Tensor:
        """(M, L) standard deviation of the coefficients, mm (1 / sigma)."""
        return 1.0 / self.sigma

    def reconstruct(self, coefficients: Tensor, component: Tensor) -> Tensor:
        """Poses ``mean[m] + Σ_l a_l bases[m, l]`` in the canonical frame.

        Args:
            coefficients: (B, L) basis coefficients, mm.
            component: (B,) long component index of each pose.

        Returns:
            (B, J, 3) poses, mm.
        """
        return self.mean[component] + torch.einsum(
            "bl,bljd->bjd", coefficients, self.bases[component]
        )

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> PPCAModel:
        """A copy on ``device`` with floating tensors cast to ``dtype``."""
        return PPCAModel(*(t.to(device=device, dtype=dtype) for t in dataclasses.astuple(self)))


def _h5_file(root: str | Path | None, name: str) -> Path:
    path = Path(DEFAULT_PPCA_ROOT if root is None else root) / name
    if not path.is_file():
        raise DatasetNotFoundError(
            f"PPCA file '{path}' not found (resolved: '{path.resolve()}'). Pass the folder holding "
            f"{name} as `root`; the default root is '{DEFAULT_PPCA_ROOT}', relative to the working "
            f"directory."
        )
    return path


def _read_h5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as handle:
        return {key: np.asarray(handle[key][()]) for key in handle}


def _joint_major(array: np.ndarray, dtype: torch.dtype) -> Tensor:
    """(…, 3, J) coordinate-major → (…, J, 3) joint-major tensor."""
    return torch.as_tensor(np.swapaxes(array, -1, -2).copy(), dtype=dtype)


def load_ppca(
    root: str | Path | None = None, num_components: int = 3, dtype: torch.dtype = torch.float64
) -> PPCAModel:
    """Load the PPCA mixture with ``num_components`` (3, 6 or 10) from ``model_parameters.h5``.

    Args:
        root: Folder of the file; ``None`` means :data:`DEFAULT_PPCA_ROOT`.
        num_components: Which of the stored mixtures: 3 (the authors' default), 6 or 10.
        dtype: Floating dtype of the tensors.

    Raises:
        DatasetNotFoundError: If the file is missing.
        ValueError: If ``num_components`` is not stored.
    """
    if num_components not in (3, 6, 10):
        raise ValueError(f"Expected `num_components` in (3, 6, 10), got {num_components}.")
    data = _read_h5(_h5_file(root, "model_parameters.h5"))
    sigma = torch.as_tensor(data[f"sigma_{num_components}"], dtype=dtype)
    return PPCAModel(
        mean=_joint_major(data[f"mu_{num_components}"], dtype),
        bases=_joint_major(data[f"e_{num_components}"], dtype),
        sigma=sigma[:, :-1],
        scale=sigma[:, -1],
    )


def load_avg_cameras(root: str | Path | None = None, dtype: torch.dtype = torch.float64) -> Tensor:
    """(4, 3, 3) world→camera rotations averaged over subjects (``avg_cameras.h5``)."""
    return torch.as_tensor(_read_h5(_h5_file(root, "avg_cameras.h5"))["cams"], dtype=dtype)


@dataclass
class AuthorsTrainedParameters:
    """The Wibergian-learning checkpoint (epoch 6, 3 components) with its scalings undone.

    Shapes use M = 3 components, L = 25 bases, J = 17 joints, C = 4 cameras.

    Attributes:
        mean: (M, J, 3) trained mean poses, mm (``mean_pose`` × ``mod_mu``).
        bases: (M, L, J, 3) trained bases (``base_vectors`` × ``mod_e``; no longer orthonormal).
        prior_matrix: (M, 29, 29) prior matrix (``sigma_variance`` × ``mod_lambda``); initially
            diag(0, 1e-5, 1e-5, 1e-5, sigma[m]) over the coefficients (scale, 3 translations,
            25 bases). The energy multiplies it by ``lambda_0``.
        joint_weights: (M, J, 2) weight per joint and image axis on the reprojection residual.
        camera_multipliers: (C, 3, 3) trained element-wise multipliers (``cameras``).
        avg_cameras: (C, 3, 3) averaged rotations (``avg_cameras.h5``).
        cameras: (C, 3, 3) effective view matrices ``camera_multipliers ⊙ avg_cameras``; rows
            0–1 are ≈ 11 × a rotation (they absorb the 2D normalisation), row 2 is unused.
        component_scale: (M,) ``sigma_3[:, 25]`` of the untrained PPCA file.
        lambda_0: (M,) multiplier of the prior matrix.
        lambda_scale: (M,) multiplier of ``component_scale`` in the reprojection weight.
        exp_weights: (M,) temperature of the soft-min over rotations.
        exp_weights_model: (M,) temperature of the soft-min over components.
        exp_additive_model: (M,) additive bias of the soft-min over components.
        hl_params: (M,) pseudo-Huber parameter; δ = 0.1 · hl_params (:attr:`huber_delta`).
        ir_reg: (M,) prior weight parameter; the energy uses 0.75 · ir_reg (:attr:`prior_weight`).
        scale_regularizer: () target parameter of the scale prior row (:attr:`prior_target`).
        scaling_coefficient: () global scale of the unit-limb-norm output pose.
        mod_mu: mean |mu_3| = 154.835 mm, the divisor undone on ``mean``.
        mod_e: mean |e_3| = 0.094609, the divisor undone on ``bases``.
        mod_lambda: mean |initial prior matrices|, the divisor undone on ``prior_matrix``.
        epoch: training epoch of the checkpoint.
    """

    mean: Tensor
    bases: Tensor
    prior_matrix: Tensor
    joint_weights: Tensor
    camera_multipliers: Tensor
    avg_cameras: Tensor
    cameras: Tensor
    component_scale: Tensor
    lambda_0: Tensor
    lambda_scale: Tensor
    exp_weights: Tensor
    exp_weights_model: Tensor
    exp_additive_model: Tensor
    hl_params: Tensor
    ir_reg: Tensor
    scale_regularizer: Tensor
    scaling_coefficient: Tensor
    mod_mu: float
    mod_e: float
    mod_lambda: float
    epoch: int

    @property
    def huber_delta(self) -> Tensor:
        """(M,) pseudo-Huber scale δ = 0.1 · hl_params, in normalised 2D units."""
        return 0.1 * self.hl_params

    @property
    def prior_weight(self) -> Tensor:
        """(M,) weight 0.75 · ir_reg of the prior rows."""
        return 0.75 * self.ir_reg

    @property
    def reprojection_weight(self) -> Tensor:
        """(M,) base weight s = component_scale · lambda_scale of the reprojection rows."""
        return self.component_scale * self.lambda_scale

    @property
    def prior_target(self) -> Tensor:
        """() target −0.003 · scale_regularizer of the prior row on the mean-pose scale."""
        return -0.003 * self.scale_regularizer


def _initial_prior_scale(sigma: np.ndarray) -> float:
    """mod_lambda: mean |diag(0, 1e-5, 1e-5, 1e-5, sigma[m, :25])| over all (M, 29, 29) entries."""
    m, n = sigma.shape[0], sigma.shape[1] - 1 + 4
    diag = np.concatenate([np.zeros((m, 1)), np.full((m, 3), 1e-5), sigma[:, :-1]], axis=1)
    return float(np.abs(diag).sum() / (m * n * n))


def load_authors_trained(
    root: str | Path | None = None, dtype: torch.dtype = torch.float64
) -> AuthorsTrainedParameters:
    """Load ``trained_model.h5`` and undo the authors' internal scalings.

    The divisors are recomputed from ``model_parameters.h5`` (``mu_3``, ``e_3``, ``sigma_3``) and
    the effective cameras need ``avg_cameras.h5``: all three files must be under ``root``.

    Raises:
        DatasetNotFoundError: If a file is missing.
    """
    trained = _read_h5(_h5_file(root, "trained_model.h5"))
    ppca = _read_h5(_h5_file(root, "model_parameters.h5"))
    avg = load_avg_cameras(root, dtype)
    mod_mu, mod_e = float(np.abs(ppca["mu_3"]).mean()), float(np.abs(ppca["e_3"]).mean())
    mod_lambda = _initial_prior_scale(ppca["sigma_3"])
    vec = {name: torch.as_tensor(trained[name], dtype=dtype).reshape(-1)
           for name in ("lambda_0", "lambda_scale", "exp_weights", "exp_weights_model",
                        "exp_additive_model", "hl_params", "ir_reg")}  # fmt: skip
    multipliers = torch.as_tensor(trained["cameras"], dtype=dtype)
    return AuthorsTrainedParameters(
        mean=_joint_major(trained["mean_pose"] * mod_mu, dtype),
        bases=_joint_major(trained["base_vectors"] * mod_e, dtype),
        prior_matrix=torch.as_tensor(trained["sigma_variance"] * mod_lambda, dtype=dtype),
        joint_weights=torch.as_tensor(trained["joint_weights"], dtype=dtype).reshape(-1, 17, 2),
        camera_multipliers=multipliers,
        avg_cameras=avg,
        cameras=multipliers * avg,
        component_scale=torch.as_tensor(ppca["sigma_3"][:, -1], dtype=dtype),
        scale_regularizer=torch.as_tensor(trained["scale_regularizer"], dtype=dtype),
        scaling_coefficient=torch.as_tensor(trained["scaling_coefficient"], dtype=dtype),
        mod_mu=mod_mu,
        mod_e=mod_e,
        mod_lambda=mod_lambda,
        epoch=int(trained["epoch"]),
        **vec,
    )


def yaw_rotation(yaw: Tensor) -> Tensor:
    """(…, 3, 3) rotations by ``yaw`` radians about the z (up) axis, anticlockwise from above."""
    cos, sin = torch.cos(yaw), torch.sin(yaw)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    rows = (torch.stack((cos, -sin, zero), -1), torch.stack((sin, cos, zero), -1),
            torch.stack((zero, zero, one), -1))  # fmt: skip
    return torch.stack(rows, dim=-2)


def canonicalise_poses(poses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Bring world poses (z up) into the PPCA canonical frame.

    Each pose is centred over its joints and turned about z so that the hip line
    (LHip → RHip, joints 4 → 1) points along +x. Then ``poses = canonical @ yaw_rotation(yaw).T
    + centre``.

    Args:
        poses: (…, J, 3) world poses, mm, z up, Human3.6M joint order.

    Returns:
        ``(canonical (…, J, 3), yaw (…,) radians, centre (…, 3) mm)``.
    """
    centre = poses.mean(dim=-2)
    hips = poses[..., 1, :] - poses[..., 4, :]
    yaw = torch.atan2(hips[..., 1], hips[..., 0])
    canonical = (poses - centre.unsqueeze(-2)) @ yaw_rotation(yaw)
    return canonical, yaw, centre


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
        >>> from lightning_energy.data.pose_synthetic import tiny_pose_model
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
