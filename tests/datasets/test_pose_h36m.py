"""Human3.6M reader: a tiny dataset written in the real layout, and the real data when staged."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_energy.datamodules.pose import PoseDataModule
from lightning_energy.datasets.h36m import (
    DEFAULT_H36M_ROOT,
    load_h36m,
    read_cameras,
    read_sequences,
)
from lightning_energy.datasets.pose_batch import CAMERA_IDS, PoseFrames
from lightning_energy.errors import DatasetNotFoundError

REAL_ROOT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "h36m_multiview_sh"
needs_real = pytest.mark.skipif(
    not (REAL_ROOT / "sequences.csv").is_file(),
    reason=f"Human3.6M development data not staged at {REAL_ROOT}",
)

# (subject, sequence, action, frames) of the tiny dataset.
TINY = [
    ("S1", "Walking", "Walking", 7),
    ("S1", "Eating_2", "Eating", 4),
    ("S5", "Walking_1", "Walking", 5),
]
# The files store cameras in this order; the reader must reorder them to CAMERA_IDS.
FILE_ORDER = [2, 0, 3, 1]


def _camera(subject_index: int, cam: int) -> dict:
    angle = 0.3 * cam + 0.1 * subject_index
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.array([[cos, -sin, 0], [0, 0, -1], [sin, cos, 0]])
    return {
        "camera_id": CAMERA_IDS[cam],
        "resolution_wh": [1000, 1000],
        "R_world_to_camera": rot.tolist(),
        "R_as_stored": rot.T.tolist(),
        "T_camera_centre_world_mm": [1000.0 * cam, -5000.0, 1500.0 + subject_index],
        "f": [1100.0 + cam, 1101.0 + cam],
        "c": [500.0 + cam, 501.0 + cam],
        "k": [-0.2, 0.2 + 0.01 * cam, 0.001],
        "p": [0.001 * cam, -0.001],
    }


def _values(subject: str, sequence: str, frames: int,
            table: list[tuple[str, str, str, int]] = TINY) -> tuple[np.ndarray, np.ndarray]:
    """Distinct, recognisable values: 3D = seq code + frame + joint / 100, 2D = view·1000 + …"""
    code = 10_000 * (1 + [t[1] for t in table].index(sequence)) + 100_000 * int(subject[1:])
    t = np.arange(frames)[:, None, None]
    j = np.arange(17)[None, :, None]
    joints3d = (code + 10 * t + j / 100 + np.arange(3)).astype(np.float32)
    view = np.arange(4)[:, None, None, None]
    joints2d = (1000 * view + 10 * t[None] + j[None] + np.arange(2) / 10).astype(np.float32)
    joints2d[:, :, 9] = np.nan
    return joints3d, joints2d


def write_tiny_layout(root: Path, table: list[tuple[str, str, str, int]] = TINY) -> Path:
    """Write a tiny dataset (rows as in ``TINY``) in the staged layout (npz, csv, json)."""
    subjects = sorted({t[0] for t in table})
    rows = []
    for subject, sequence, action, frames in table:
        (root / subject).mkdir(parents=True, exist_ok=True)
        joints3d, joints2d = _values(subject, sequence, frames, table)
        np.savez_compressed(
            root / subject / f"{sequence}.npz",
            joints3d_world=joints3d,
            joints2d_sh=joints2d[FILE_ORDER],
            frame_index=(5 * np.arange(frames)).astype(np.int32),
            camera_ids=np.array(CAMERA_IDS)[FILE_ORDER],
            camera_has_detections=np.ones(4, dtype=bool),
            subject=np.array(subject),
            sequence=np.array(sequence),
            action=np.array(action),
        )
        file = f"{subject}/{sequence}.npz"
        rows.append([subject, sequence, action, file, 5 * frames, frames, "1111", "src3d", "src2d"])
    with (root / "sequences.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        header = "subject sequence action file n_frames_50hz n_frames_stored"
        writer.writerow([*header.split(), "cameras_with_detections", "source_3d", "source_2d"])
        writer.writerows(rows)
    cameras = {
        "camera_order": list(CAMERA_IDS),
        "joint_names_17": [],
        "subjects": {s: [_camera(i, c) for c in FILE_ORDER] for i, s in enumerate(subjects)},
    }
    (root / "cameras.json").write_text(json.dumps(cameras))
    return root


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    return write_tiny_layout(tmp_path / "h36m_tiny")


def test_reader_reads_values_in_layout(tiny_root: Path) -> None:
    arrays = load_h36m(tiny_root, subjects=["S1", "S5"])
    assert len(arrays) == 7 + 4 + 5
    assert arrays.joints2d.shape == (16, 4, 17, 2)
    joints3d, joints2d = _values("S1", "Eating_2", 4)
    rows = np.flatnonzero(arrays.sequence == "Eating_2")
    np.testing.assert_array_equal(arrays.joints3d[rows], joints3d)
    # Views come back in CAMERA_IDS order although the file stores them permuted.
    np.testing.assert_array_equal(arrays.joints2d[rows], np.moveaxis(joints2d, 0, 1))
    np.testing.assert_array_equal(arrays.frame[rows], [0, 5, 10, 15])
    assert set(arrays.action[arrays.subject == "S5"]) == {"Walking"}


def test_reader_cameras_per_subject(tiny_root: Path) -> None:
    arrays = load_h36m(tiny_root, subjects=["S5", "S1"])
    rigs = read_cameras(tiny_root, ["S1"])
    s1 = arrays.camera_index[arrays.subject == "S1"]
    assert set(s1) == {1}
    np.testing.assert_array_equal(arrays.cameras.R[1], rigs.R[0])
    np.testing.assert_array_equal(arrays.cameras.f[1, :, 0], [1100, 1101, 1102, 1103])
    assert arrays.cameras.T[0, 0, 2] == 1501.0  # S5 is the second subject in cameras.json


def test_reader_batch_has_nan_replaced(tiny_root: Path) -> None:
    batch = PoseFrames(load_h36m(tiny_root, subjects=["S1"])).__getitems__([0, 3])[0]
    assert not batch.visible[:, :, 9].any()
    assert batch.visible[:, :, [0, 1, 16]].all()
    assert torch.equal(batch.joints2d[:, :, 9], torch.zeros(2, 4, 2))
    assert batch.subject == ["S1", "S1"]
    assert batch.R.shape == (2, 4, 3, 3)


def test_reader_selects_actions_stride_and_cap(tiny_root: Path) -> None:
    walking = load_h36m(tiny_root, subjects=["S1", "S5"], actions=["Walking"])
    assert set(walking.sequence) == {"Walking", "Walking_1"}
    strided = load_h36m(tiny_root, subjects=["S1"], frame_stride=3)
    assert list(strided.frame) == [0, 15, 30, 0, 15]
    capped = load_h36m(tiny_root, subjects=["S1"], max_frames_per_subject=3)
    assert len(capped) == 3
    assert set(capped.sequence) == {"Walking", "Eating_2"}  # evenly spaced, not the first three
    with pytest.raises(ValueError, match="Unknown actions"):
        load_h36m(tiny_root, subjects=["S1"], actions=["Dancing"])


def test_missing_subject_names_path_subject_and_default(tiny_root: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_h36m(tiny_root, subjects=["S1", "S9"])
    message = str(info.value)
    assert "'S9'" in message
    assert str(tiny_root) in message
    assert DEFAULT_H36M_ROOT in message


def test_missing_root_names_default(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="h36m_multiview_sh") as info:
        load_h36m(tmp_path / "nowhere", subjects=["S1"])
    assert "nowhere" in str(info.value)


def test_datamodule_reads_root(tiny_root: Path) -> None:
    dm = PoseDataModule(
        root=str(tiny_root), train_subjects=["S1"], val_subjects=["S5"], batch_size=4
    )
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch.joints2d.shape == (4, 4, 17, 2)
    assert batch.subject == ["S5"] * 4
    assert len(dm.train_dataloader().dataset) == 11
    dm.setup("test")  # test subjects default to the validation subjects
    assert set(dm.test_dataloader().dataset.arrays.subject) == {"S5"}


def test_datamodule_missing_subject_fails_at_setup(tiny_root: Path) -> None:
    dm = PoseDataModule(root=str(tiny_root), train_subjects=["S1", "S7"], val_subjects=["S5"])
    with pytest.raises(DatasetNotFoundError, match="'S7'"):
        dm.setup("fit")


@needs_real
def test_real_s1_counts() -> None:
    rows = [r for r in read_sequences(REAL_ROOT) if r.subject == "S1"]
    assert len(rows) == 30
    arrays = load_h36m(REAL_ROOT, subjects=["S1"])
    assert len(arrays) == 12_433
    assert len(set(arrays.sequence)) == 30
    assert len(set(arrays.action)) == 15
    assert np.isnan(arrays.joints2d[:, :, 9]).all()
    assert not np.isnan(arrays.joints2d[:, :, [0, 1, 10, 16]]).any()
    # Detections lie in the 1000 × 1002 pixel images (a few slightly outside).
    uv = np.delete(arrays.joints2d, 9, axis=2)
    assert ((uv >= 0) & (uv <= 1002)).mean() > 0.999


def test_reader_counts_a_detection_with_one_nan_coordinate_as_missing(tiny_root: Path) -> None:
    """Faulty variant: only detections NaN in both coordinates count as missing."""
    path = tiny_root / "S5" / "Walking_1.npz"
    with np.load(path) as data:
        fields = dict(data)
    fields["joints2d_sh"][:, 2, 4, 1] = np.nan  # frame 2, joint 4: v missing in every view
    np.savez_compressed(path, **fields)
    batch = PoseFrames(load_h36m(tiny_root, subjects=["S5"])).__getitems__([1, 2])[0]
    assert not batch.visible[1, :, 4].any()
    assert batch.visible[0, :, 4].all()
    assert torch.equal(batch.joints2d[1, :, 4], torch.zeros(4, 2))
