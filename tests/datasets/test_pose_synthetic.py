"""Synthetic multi-view pose generator: model, geometry and detector-noise statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_energy.datasets.pose_batch import LEFT_RIGHT_PAIRS
from lightning_energy.datasets.pose_synthetic import H36M_S1_CAMERAS, generate_synthetic_poses
from lightning_energy.energies.cameras import world_to_camera
from lightning_energy.energies.ppca import SKELETON_PARENTS, tiny_pose_model


def test_tiny_model_is_a_valid_ppca_model() -> None:
    model = tiny_pose_model(num_bases=6, num_components=2)
    flat = model.bases.reshape(2, 6, -1)
    eye = torch.eye(6, dtype=torch.float64)
    assert (flat @ flat.transpose(-1, -2) - eye).abs().max() < 1e-12
    assert model.mean.mean(dim=1).abs().max() < 1e-9
    assert model.bases.mean(dim=2).abs().max() < 1e-12  # deformations keep the centroid
    assert (model.sigma.diff(dim=1) > 0).all()
    height = model.mean[0, 10, 2] - model.mean[0, 3, 2]
    assert 1400 < height < 1700
    assert not torch.allclose(model.mean[0], model.mean[1])


def test_poses_stand_on_the_floor_with_plausible_bones() -> None:
    arrays = generate_synthetic_poses(2000, seed=0, floor_radius=1500.0)
    poses = arrays.joints3d.astype(np.float64)
    np.testing.assert_allclose(poses[..., 2].min(axis=1), 0.0, atol=1e-3)
    centroid = np.linalg.norm(poses.mean(axis=1)[:, :2], axis=1)
    assert centroid.max() <= 1500.0 + 1e-3
    assert 0.6 < np.mean(centroid < 1500 / np.sqrt(2)) / 0.5 < 1.4  # uniform on the disc
    child = [j for j, p in enumerate(SKELETON_PARENTS) if p >= 0]
    parent = [SKELETON_PARENTS[j] for j in child]
    bones = np.linalg.norm(poses[:, child] - poses[:, parent], axis=-1)
    assert np.median(bones) > 80
    assert np.percentile(bones, 99) < 800
    hips = poses[:, 1] - poses[:, 4]
    yaw = np.arctan2(hips[:, 1], hips[:, 0])
    assert np.histogram(yaw, bins=4, range=(-np.pi, np.pi))[0].min() > 350  # yaw uniform


def test_poses_are_in_front_of_and_inside_every_camera() -> None:
    arrays = generate_synthetic_poses(500, seed=1, noise_px=0.0, dropout_prob=0.0, swap_prob=0.0)
    cams = {n: torch.as_tensor(getattr(H36M_S1_CAMERAS, n)) for n in ("R", "T")}
    depth = world_to_camera(torch.as_tensor(arrays.joints3d, dtype=torch.float64), **cams)[..., 2]
    assert depth.min() > 2000
    uv = np.delete(arrays.joints2d, 9, axis=2)
    inside = (uv >= 0).all(-1) & (uv[..., 0] <= 1000) & (uv[..., 1] <= 1002)
    assert inside.mean() > 0.99


def test_noise_swaps_and_dropouts_have_requested_rates() -> None:
    clean = generate_synthetic_poses(3000, seed=2, noise_px=0.0, swap_prob=0.0, dropout_prob=0.0)
    noisy = generate_synthetic_poses(3000, seed=2, noise_px=4.0, swap_prob=0.0, dropout_prob=0.05)
    np.testing.assert_array_equal(noisy.joints3d, clean.joints3d)  # same poses for the same seed
    assert np.isnan(noisy.joints2d[:, :, 9]).all()
    missing = np.isnan(np.delete(noisy.joints2d, 9, axis=2)[..., 0])
    assert missing.mean() == pytest.approx(0.05, abs=0.005)
    residual = (noisy.joints2d - clean.joints2d)[~np.isnan(noisy.joints2d)]
    assert residual.std() == pytest.approx(4.0, rel=0.03)
    assert abs(residual.mean()) < 0.05

    swapped = generate_synthetic_poses(3000, seed=2, noise_px=0.0, swap_prob=0.2, dropout_prob=0.0)
    right, left = (list(side) for side in zip(*LEFT_RIGHT_PAIRS, strict=True))
    moved = (swapped.joints2d[:, :, right] != clean.joints2d[:, :, right]).any(-1)
    exchanged = (swapped.joints2d[:, :, right] == clean.joints2d[:, :, left]).all(-1)
    assert np.array_equal(moved, exchanged)  # every change is an exact left/right exchange
    assert moved.mean() == pytest.approx(0.2, abs=0.01)


def test_generator_is_seeded() -> None:
    a, b = generate_synthetic_poses(8, seed=4), generate_synthetic_poses(8, seed=4)
    np.testing.assert_array_equal(a.joints2d, b.joints2d)
    assert not np.array_equal(a.joints3d, generate_synthetic_poses(8, seed=5).joints3d)
    assert list(a.subject) == ["synthetic"] * 8
    assert a.cameras.R.shape == (1, 4, 3, 3)
