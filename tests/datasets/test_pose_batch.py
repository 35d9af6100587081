"""Missing detections in pose batches: one NaN coordinate of two makes a joint undetected."""

from __future__ import annotations

import numpy as np
import torch

from lightning_energy.datasets.pose_batch import UNDETECTED_JOINT
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.energies.pose import MultiViewPoseEnergy, pose_energy_inputs
from lightning_energy.energies.triangulation import triangulate_dlt

# (frame, view, joint, coordinate) set to NaN: u of one detection, v of another.
HALF_MISSING = [(0, 1, 3, 0), (1, 2, 5, 1)]


def _arrays():
    arrays = generate_synthetic_poses(3, seed=0, noise_px=0.0, swap_prob=0.0, dropout_prob=0.0)
    for frame, view, joint, coordinate in HALF_MISSING:
        arrays.joints2d[frame, view, joint, coordinate] = np.nan
    return arrays


def test_a_joint_with_one_nan_coordinate_is_undetected_and_zeroed():
    """Faulty variants: visibility needs both coordinates NaN; the other coordinate is kept."""
    batch = _arrays().to_batch(dtype=torch.float64)
    expected = torch.ones(3, 4, 17, dtype=torch.bool)
    expected[:, :, UNDETECTED_JOINT] = False
    for frame, view, joint, _ in HALF_MISSING:
        expected[frame, view, joint] = False
    assert torch.equal(batch.visible, expected)
    assert bool(torch.isfinite(batch.joints2d).all())
    assert bool((batch.joints2d[~batch.visible] == 0).all())  # as PoseBatch documents
    assert bool((batch.joints2d[batch.visible] != 0).all())


def test_energy_inputs_ignore_whatever_an_undetected_joint_holds():
    """Faulty variant: `pose_energy_inputs` keeps the coordinates of invisible detections."""
    batch = _arrays().to_batch(dtype=torch.float64)
    clean = pose_energy_inputs(batch, 1)
    for frame, view, joint, coordinate in HALF_MISSING:  # "any value where not visible"
        batch.joints2d[frame, view, joint] = 1e4
        batch.joints2d[frame, view, joint, coordinate] = float("nan")
    dirty = pose_energy_inputs(batch, 1)
    assert torch.equal(dirty.visible, clean.visible)
    assert torch.equal(dirty.joints2d, clean.joints2d)
    energy = MultiViewPoseEnergy(None, num_components=1).double()
    x = energy.initial_solution(clean)
    assert torch.equal(energy(x, dirty), energy(x, clean))
    assert bool(torch.isfinite(energy(x, dirty)).all())


def test_triangulation_skips_a_view_with_one_nan_coordinate():
    """Faulty variant: the half-missing view enters the DLT (the joint comes out NaN)."""
    arrays = _arrays()
    batch = arrays.to_batch(dtype=torch.float64)
    raw = torch.as_tensor(arrays.joints2d, dtype=torch.float64)  # NaN kept, as a user may pass
    points = triangulate_dlt(raw, batch.visible, batch.R, batch.T, batch.f, batch.c, batch.k,
                             batch.p)
    detected = torch.ones(3, 17, dtype=torch.bool)
    detected[:, UNDETECTED_JOINT] = False
    assert bool(torch.isfinite(points[detected]).all())
    error = (points[detected] - batch.joints3d[detected]).norm(dim=-1)
    assert float(error.max()) < 1.0  # mm: noise-free detections, three views or more each
