"""Synthetic multi-view pose data in the layout of the Human3.6M reader.

:func:`generate_synthetic_poses` samples 3D poses from a
:class:`~lightning_energy.energies.ppca.PPCAModel` (the built-in :func:`tiny_pose_model` by default,
so nothing needs to be downloaded), places them on the floor with a random yaw, projects them
into the four Human3.6M cameras of subject S1 and adds detector-like noise. The result is a
:class:`~lightning_energy.datasets.pose_batch.PoseArrays`, so the same
:class:`~lightning_energy.datasets.pose_batch.PoseFrames` / :class:`PoseBatch` path serves real and
synthetic data.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from lightning_energy.datasets.pose_batch import (
    LEFT_RIGHT_PAIRS,
    UNDETECTED_JOINT,
    CameraArrays,
    PoseArrays,
)
from lightning_energy.energies.cameras import project_perspective
from lightning_energy.energies.ppca import PPCAModel, tiny_pose_model, yaw_rotation

#: Calibration of the four Human3.6M cameras for subject S1 (``cameras.json``), in the order
#: 54138969, 55011271, 58860488, 60457274: R world→camera, T camera centre (mm), f, c (px), k, p.
H36M_S1_CAMERAS = CameraArrays(
    R=np.array([[
        [[-0.9153617321513369, 0.40180836633680234, 0.02574754463350265],
         [0.051548117060134555, 0.1803735689384521, -0.9822464900705729],
         [-0.399319034032262, -0.8977836111057917, -0.185819527201491]],
        [[0.9281683400814921, 0.3721538354721445, 0.002248380248018696],
         [0.08166409428175585, -0.1977722953267526, -0.976840363061605],
         [-0.3630902204349604, 0.9068559102440475, -0.21395758897485287]],
        [[-0.9141549520542256, -0.40277802228118775, -0.045722952682337906],
         [-0.04562341383935874, 0.21430849526487267, -0.9756999400261069],
         [0.4027893093720077, -0.889854894701693, -0.214287280609606]],
        [[0.9141562410494211, -0.40060705854636447, 0.061905989962380774],
         [-0.05641000739510571, -0.2769531972942539, -0.9592261660183036],
         [0.40141783470104664, 0.8733904688919611, -0.2757767409202658]],
    ]]),
    T=np.array([[
        [1841.10702774543, 4955.28462344526, 1563.4453958977],
        [1761.27853428116, -5078.00659454077, 1606.2649598335],
        [-1846.7776610084, 5215.04650469073, 1491.97246576518],
        [-1794.78972871109, -3722.69891503676, 1574.89272604599],
    ]]),
    f=np.array([[
        [1145.04940458804, 1143.78109572365], [1149.67569986785, 1147.59161666764],
        [1149.14071676148, 1148.7989685676], [1145.51133842318, 1144.77392807652],
    ]]),
    c=np.array([[
        [512.541504956548, 515.4514869776], [508.848621645943, 508.064917088557],
        [519.815837182153, 501.402658888552], [514.968197319863, 501.882018537695],
    ]]),
    k=np.array([[
        [-0.207098910824901, 0.247775183068982, -0.00307515035078854],
        [-0.194213629607385, 0.240408539138292, 0.00681997559022603],
        [-0.208338188251856, 0.255488007488945, -0.00246049749891915],
        [-0.198384093827848, 0.218323676298049, -0.00894780704152122],
    ]]),
    p=np.array([[
        [-0.00142447157470321, -0.000975698859470499], [-0.0027408943961907, -0.001619026613787],
        [-0.000759999321030303, 0.00148438698385668], [-0.00181336200488089, -0.000587205583421232],
    ]]),
)  # fmt: skip

_CAMERA_FIELDS = ("R", "T", "f", "c", "k", "p")


def sample_world_poses(
    model: PPCAModel, num_frames: int, gen: torch.Generator, floor_radius: float = 1500.0
) -> Tensor:
    """(N, J, 3) world poses: PPCA samples, random yaw, standing on z = 0 inside a disc.

    Coefficients are Gaussian with standard deviation ``1/sigma``; the component is uniform.
    The pose's joint centroid is placed uniformly in a disc of ``floor_radius`` mm around the
    world origin (the centre of the Human3.6M capture area) and the lowest joint on the floor.
    """
    model = model.to(dtype=torch.float64)
    component = torch.randint(model.num_components, (num_frames,), generator=gen)
    coefficients = torch.randn(num_frames, model.num_bases, generator=gen, dtype=torch.float64)
    canonical = model.reconstruct(coefficients * model.coefficient_std[component], component)
    yaw = 2 * math.pi * torch.rand(num_frames, generator=gen, dtype=torch.float64)
    radius = floor_radius * torch.rand(num_frames, generator=gen, dtype=torch.float64).sqrt()
    angle = 2 * math.pi * torch.rand(num_frames, generator=gen, dtype=torch.float64)
    world = canonical @ yaw_rotation(yaw).transpose(-1, -2)
    lift = -world[..., 2].min(dim=-1).values
    shift = torch.stack((radius * angle.cos(), radius * angle.sin(), lift), dim=-1)
    return world + shift.unsqueeze(-2)


def sample_world_sequences(
    model: PPCAModel, num_sequences: int, num_frames: int, gen: torch.Generator,
    body_offset_mm: float = 20.0, floor_radius: float = 1500.0,
) -> Tensor:
    """(S, T, J, 3) world poses of S sequences moving smoothly, each with its own body.

    Per sequence: one mixture component; coefficients, yaw and position follow smooth random
    paths (sums of a few slow sinusoids); a fixed offset of every joint in the body frame
    (Gaussian, ``body_offset_mm`` per axis) stands for the sequence's person not matching the
    pose model, as the measured per-subject offsets on Human3.6M do.
    """
    model = model.to(dtype=torch.float64)
    s, t, j = num_sequences, num_frames, model.num_joints
    time = torch.arange(t, dtype=torch.float64)[None, :, None]

    def smooth(size: int, scale: float) -> Tensor:  # (S, T, size): three slow sinusoids each
        freq = 0.02 + 0.1 * torch.rand(s, 1, size, 3, generator=gen, dtype=torch.float64)
        phase = 2 * math.pi * torch.rand(s, 1, size, 3, generator=gen, dtype=torch.float64)
        amp = torch.randn(s, 1, size, 3, generator=gen, dtype=torch.float64)
        return scale * (amp * torch.sin(freq * time[..., None] + phase)).sum(-1) / 3**0.5

    component = torch.randint(model.num_components, (s,), generator=gen).repeat_interleave(t)
    coefficients = smooth(model.num_bases, 1.0).reshape(s * t, -1)
    canonical = model.reconstruct(coefficients * model.coefficient_std[component], component)
    offset = body_offset_mm * torch.randn(s, 1, j, 3, generator=gen, dtype=torch.float64)
    canonical = canonical.reshape(s, t, j, 3) + offset
    heading = 2 * math.pi * torch.rand(s, 1, generator=gen, dtype=torch.float64)
    yaw = heading + smooth(1, 0.5)[..., 0]
    world = canonical @ yaw_rotation(yaw.reshape(-1)).reshape(s, t, 3, 3).transpose(-1, -2)
    lift = -world[..., 2].amin(dim=(1, 2))
    centre = 0.5 * floor_radius * torch.tanh(smooth(2, 1.0))
    shift = torch.cat([centre, lift[:, None, None].expand(s, t, 1)], -1)
    return world + shift.unsqueeze(-2)


def corrupt_detections(
    joints2d: Tensor,
    gen: torch.Generator,
    noise_px: float = 5.0,
    swap_prob: float = 0.01,
    dropout_prob: float = 0.01,
) -> Tensor:
    """Detector-like corruption of (N, C, J, 2) pixels: noise, left/right swaps, dropouts.

    Gaussian noise of ``noise_px`` pixels per axis; each left/right pair of each view is
    swapped with probability ``swap_prob``; each detection is dropped (NaN) with probability
    ``dropout_prob``; joint 9 (Neck/Nose) is always NaN, as with stacked-hourglass detections.
    """
    noisy = joints2d + noise_px * torch.randn(joints2d.shape, generator=gen, dtype=joints2d.dtype)
    right, left = (list(side) for side in zip(*LEFT_RIGHT_PAIRS, strict=True))
    swap = torch.rand(*joints2d.shape[:2], len(right), 1, generator=gen) < swap_prob
    swapped = noisy.clone()
    swapped[:, :, right] = torch.where(swap, noisy[:, :, left], noisy[:, :, right])
    swapped[:, :, left] = torch.where(swap, noisy[:, :, right], noisy[:, :, left])
    drop = torch.rand(*joints2d.shape[:3], generator=gen) < dropout_prob
    drop[:, :, UNDETECTED_JOINT] = True
    return torch.where(drop.unsqueeze(-1), torch.full_like(swapped, float("nan")), swapped)


def generate_synthetic_poses(
    num_frames: int,
    model: PPCAModel | None = None,
    *,
    seed: int = 0,
    cameras: CameraArrays | None = None,
    noise_px: float = 5.0,
    swap_prob: float = 0.01,
    dropout_prob: float = 0.01,
    floor_radius: float = 1500.0,
    subject: str = "synthetic",
) -> PoseArrays:
    """Synthetic multi-view frames in the layout of :func:`~lightning_energy.datasets.load_h36m`.

    For reference, the real stacked-hourglass detections are 9 px (median) from the projected
    ground truth, with no dropouts besides joint 9.

    Args:
        num_frames: Number of frames N.
        model: Pose model; ``None`` uses :func:`tiny_pose_model`.
        seed: Seed of all random draws.
        cameras: A camera table with one rig; ``None`` uses :data:`H36M_S1_CAMERAS`.
        noise_px: Standard deviation of the pixel noise per axis.
        swap_prob: Probability of a left/right swap per pair and view.
        dropout_prob: Probability that a detection is missing (NaN).
        floor_radius: Radius (mm) of the floor disc of the pose centroids.
        subject: Label stored as subject, sequence and action.

    Returns:
        :class:`PoseArrays` with float32 joints, ``frame`` = 0…N−1 and ``camera_index`` 0.

    Example:
        >>> arrays = generate_synthetic_poses(16, seed=1)
        >>> arrays.joints2d.shape, arrays.joints3d.shape
        ((16, 4, 17, 2), (16, 17, 3))
    """
    gen = torch.Generator().manual_seed(seed)
    cameras = H36M_S1_CAMERAS if cameras is None else cameras
    world = sample_world_poses(model or tiny_pose_model(), num_frames, gen, floor_radius)
    labels = np.full(num_frames, subject)
    return _arrays(world, gen, cameras, noise_px, swap_prob, dropout_prob, labels, labels.copy(),
                   np.arange(num_frames, dtype=np.int64))


def _arrays(world: Tensor, gen: torch.Generator, cameras: CameraArrays, noise_px: float,
            swap_prob: float, dropout_prob: float, subject: np.ndarray, sequence: np.ndarray,
            frame: np.ndarray) -> PoseArrays:
    """Project world poses (N, J, 3) into the first rig of ``cameras``, corrupt, package."""
    rig = {name: torch.as_tensor(getattr(cameras, name)[:1], dtype=torch.float64)
           for name in _CAMERA_FIELDS}  # fmt: skip
    pixels = project_perspective(world, rig["R"], rig["T"], rig["f"], rig["c"], rig["k"], rig["p"])
    detections = corrupt_detections(pixels, gen, noise_px, swap_prob, dropout_prob)
    return PoseArrays(
        joints2d=detections.numpy().astype(np.float32),
        joints3d=world.numpy().astype(np.float32),
        frame=frame,
        subject=subject,
        sequence=sequence,
        action=sequence.copy(),
        camera_index=np.zeros(len(frame), dtype=np.int64),
        cameras=CameraArrays(*(getattr(cameras, name)[:1].copy() for name in _CAMERA_FIELDS)),
    )


def generate_synthetic_sequences(
    num_sequences: int,
    num_frames: int,
    model: PPCAModel | None = None,
    *,
    seed: int = 0,
    body_offset_mm: float = 20.0,
    noise_px: float = 5.0,
    swap_prob: float = 0.01,
    dropout_prob: float = 0.01,
    subject: str = "synthetic",
) -> PoseArrays:
    """Synthetic sequences in the layout of :func:`~lightning_energy.datasets.load_h36m`.

    ``num_sequences`` sequences of ``num_frames`` frames each (:func:`sample_world_sequences`),
    named ``seq0``, ``seq1``, …, projected into the S1 cameras and corrupted as in
    :func:`generate_synthetic_poses`; ``frame`` counts 0…T−1 within each sequence.

    Example:
        >>> arrays = generate_synthetic_sequences(3, 8, seed=0)
        >>> arrays.joints3d.shape, sorted(set(arrays.sequence))
        ((24, 17, 3), ['seq0', 'seq1', 'seq2'])
    """
    gen = torch.Generator().manual_seed(seed)
    world = sample_world_sequences(model or tiny_pose_model(), num_sequences, num_frames, gen,
                                   body_offset_mm).reshape(num_sequences * num_frames, -1, 3)
    names = np.repeat(np.array([f"seq{k}" for k in range(num_sequences)]), num_frames)
    frame = np.tile(np.arange(num_frames, dtype=np.int64), num_sequences)
    return _arrays(world, gen, H36M_S1_CAMERAS, noise_px, swap_prob, dropout_prob,
                   np.full(len(names), subject), names, frame)
