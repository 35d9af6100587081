import numpy as np
import pytest

from lightning_energy.datasets.otb import TrackingSequences
from lightning_energy.datasets.tracking_batch import box_validity
from lightning_energy.datasets.tracking_synthetic import (
    TrackerProfile,
    default_profiles,
    simulate_tracking,
)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    low = np.maximum(a[..., :2], b[..., :2])
    high = np.minimum(a[..., :2] + a[..., 2:], b[..., :2] + b[..., 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=-1)
    return inter / (np.prod(a[..., 2:], -1) + np.prod(b[..., 2:], -1) - inter)


@pytest.fixture(scope="module")
def data() -> TrackingSequences:
    return simulate_tracking(12, 200, 6, seed=0)


def test_shapes_names_and_first_frame(data: TrackingSequences):
    assert len(data) == 12
    assert data.trackers == [f"sim{k:02d}" for k in range(6)]
    item = data["synth_003"]
    assert item.boxes.shape == (200, 6, 4)
    assert item.gt.shape == (200, 4)
    np.testing.assert_allclose(item.boxes[0], np.broadcast_to(item.gt[0], (6, 4)))


def test_ground_truth_is_smooth_and_inside_the_image(data: TrackingSequences):
    gt = np.concatenate([item.gt for item in data])
    assert box_validity(gt).all()
    assert (gt[:, :2] >= -1e-6).all()
    assert (gt[:, 0] + gt[:, 2] <= 640 + 1e-6).all()
    assert (gt[:, 1] + gt[:, 3] <= 480 + 1e-6).all()
    steps = np.abs(np.diff(data["synth_000"].gt[:, :2], axis=0))
    assert steps.max() < 30  # pixels per frame


def test_good_trackers_beat_bad_ones(data: TrackingSequences):
    boxes = np.concatenate([item.boxes for item in data])
    gt = np.concatenate([item.gt for item in data])
    iou = np.nanmean(_iou(boxes, gt[:, None]), axis=0)
    assert iou[0] > 0.8
    assert iou[0] > iou[-1] + 0.2
    assert iou[1] > iou[-2]


def test_missing_frames_only_for_lossy_trackers(data: TrackingSequences):
    missing = np.concatenate([np.isnan(item.boxes).any(-1) for item in data]).mean(axis=0)
    lossy = [k for k, p in enumerate(default_profiles(6)) if p.loss_rate > 0]
    assert lossy == [2, 5]
    assert (missing[lossy] > 0.01).all()
    assert missing[0] == 0


def test_perfect_tracker_and_jumping_tracker():
    perfect = TrackerProfile(noise=0.0)
    jumper = TrackerProfile(noise=0.0, jump_rate=0.05, jump_duration=20)
    data = simulate_tracking(3, 150, profiles=[perfect, jumper], seed=5)
    for item in data:
        np.testing.assert_allclose(item.boxes[:, 0], item.gt, atol=1e-9)
    off = np.concatenate([_iou(item.boxes[:, 1], item.gt) < 0.999 for item in data])
    assert 0.1 < off.mean() < 0.9  # follows the distractor part of the time


def test_seed_lengths_and_missing_ground_truth():
    a = simulate_tracking(3, [10, 20, 30], 4, seed=1)
    b = simulate_tracking(3, [10, 20, 30], 4, seed=1)
    c = simulate_tracking(3, [10, 20, 30], 4, seed=2)
    assert [item.num_frames for item in a] == [10, 20, 30]
    np.testing.assert_array_equal(a["synth_002"].boxes, b["synth_002"].boxes)
    assert not np.allclose(a["synth_002"].gt, c["synth_002"].gt)
    absent = simulate_tracking(4, 300, 2, gt_missing_rate=0.02, seed=0)
    gt = np.concatenate([item.gt for item in absent])
    assert 0 < np.isnan(gt[:, 0]).mean() < 0.6
    with pytest.raises(ValueError, match="positive lengths"):
        simulate_tracking(2, [10], 3)
