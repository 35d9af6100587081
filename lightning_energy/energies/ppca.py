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

from lightning_energy.errors import DatasetNotFoundError, expect_shape, reading

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
        >>> from lightning_energy.datasets.pose_synthetic import tiny_pose_model
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


def ppca_file(root: str | Path | None, name: str) -> Path:
    """Path of ``name`` under ``root`` (default :data:`DEFAULT_PPCA_ROOT`), checked to exist."""
    path = Path(DEFAULT_PPCA_ROOT if root is None else root) / name
    if not path.is_file():
        raise DatasetNotFoundError(
            f"PPCA file '{path}' not found (resolved: '{path.resolve()}'). Pass the folder holding "
            f"{name} as `root`; the default root is '{DEFAULT_PPCA_ROOT}', relative to the working "
            f"directory."
        )
    return path


def read_h5(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file, by name, as numpy arrays.

    Raises:
        DatasetFormatError: If the file is not a readable HDF5 file (e.g. truncated).
    """
    import h5py

    with reading(path, "an HDF5 file of arrays"), h5py.File(path, "r") as handle:
        return {key: np.asarray(handle[key][()]) for key in handle}


def joint_major(array: np.ndarray, dtype: torch.dtype) -> Tensor:
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
    data = read_h5(ppca_file(root, "model_parameters.h5"))
    sigma = torch.as_tensor(data[f"sigma_{num_components}"], dtype=dtype)
    return PPCAModel(
        mean=joint_major(data[f"mu_{num_components}"], dtype),
        bases=joint_major(data[f"e_{num_components}"], dtype),
        sigma=sigma[:, :-1],
        scale=sigma[:, -1],
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


#: A standing 17-joint skeleton (mm) in the canonical frame: x to the right, y forward, z up.
_SKELETON_MM = np.array([
    [0, 0, 920], [130, 0, 920], [130, 30, 480], [130, -10, 60], [-130, 0, 920], [-130, 30, 480],
    [-130, -10, 60], [0, -20, 1150], [0, 0, 1400], [0, 60, 1480], [0, 20, 1580],
    [-150, -10, 1390], [-260, 0, 1130], [-240, 80, 900], [150, -10, 1390], [260, 0, 1130],
    [240, 80, 900],
], dtype=np.float64)  # fmt: skip
#: Parent of each joint in the kinematic tree (−1 for the root).
SKELETON_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)


def _ancestors(joint: int) -> list[int]:
    chain = []
    while SKELETON_PARENTS[joint] >= 0:
        joint = SKELETON_PARENTS[joint]
        chain.append(joint)
    return chain


def _articulation_fields(skeleton: Tensor, count: int, gen: torch.Generator) -> Tensor:
    """(count, J·3) centred displacement fields of random small rotations at every joint."""
    omega = torch.randn(count, len(SKELETON_PARENTS), 3, generator=gen, dtype=torch.float64)
    fields = torch.zeros(count, len(SKELETON_PARENTS), 3, dtype=torch.float64)
    for joint in range(len(SKELETON_PARENTS)):
        for pivot in _ancestors(joint):
            arm = (skeleton[joint] - skeleton[pivot]).expand(count, 3)
            fields[:, joint] += torch.linalg.cross(omega[:, pivot], arm)
    fields = fields - fields.mean(dim=1, keepdim=True)
    return fields.reshape(count, -1)


def tiny_pose_model(num_bases: int = 6, num_components: int = 1, seed: int = 0) -> PPCAModel:
    """A small procedural PPCA model: a plausible skeleton and smooth orthonormal bases.

    The mean is a standing 17-joint skeleton (1.6 m tall) in the canonical frame (centred, z up,
    right-side joints at +x). Bases are orthonormalised displacement fields of random small
    rotations about every joint (smooth along the limbs). Coefficient standard deviations are
    250·0.7^l mm (``sigma = 1/std``) and ``scale = 1/15`` mm⁻¹. Extra components move the mean
    by a random articulation of about 300 mm.

    Args:
        num_bases: Bases per component L.
        num_components: Components M.
        seed: Seed of the random fields.

    Returns:
        A float64 :class:`PPCAModel`.
    """
    gen = torch.Generator().manual_seed(seed)
    skeleton = torch.as_tensor(_SKELETON_MM)
    means, bases = [], []
    for m in range(num_components):
        mean = skeleton - skeleton.mean(dim=0)
        if m > 0:
            shift = _articulation_fields(skeleton, 1, gen)[0]
            mean = mean + (300.0 * shift / shift.norm()).reshape(-1, 3)
        q, _ = torch.linalg.qr(_articulation_fields(skeleton, num_bases, gen).T)
        means.append(mean)
        bases.append(q.T.reshape(num_bases, -1, 3))
    std = 250.0 * 0.7 ** torch.arange(num_bases, dtype=torch.float64)
    return PPCAModel(
        mean=torch.stack(means),
        bases=torch.stack(bases),
        sigma=(1.0 / std).expand(num_components, num_bases).clone(),
        scale=torch.full((num_components,), 1.0 / 15.0, dtype=torch.float64),
    )
