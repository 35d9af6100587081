import numpy as np
import pytest
import torch
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.utilities.data import extract_batch_size

from lightning_energy.datasets.tracking_batch import (
    TrackingBatch,
    TrackingSample,
    box_validity,
    collate_tracking,
)
from lightning_energy.errors import ShapeError


def _sample(frames: int = 5, trackers: int = 3, name: str = "seq", start: int = 0):
    rng = np.random.default_rng(frames)
    boxes = rng.uniform(1, 50, (frames, trackers, 4))
    gt = rng.uniform(1, 50, (frames, 4))
    return TrackingSample.from_arrays(boxes, gt, name, start)


def test_box_validity_rules():
    boxes = np.array(
        [[1, 2, 3, 4], [np.nan] * 4, [1, 2, 0, 4], [1, 2, 3, -1], [1, np.inf, 3, 4], [0, 0, 0, 0]]
    )
    assert box_validity(boxes).tolist() == [True, False, False, False, False, False]


def test_from_arrays_masks_and_zeroes_invalid_boxes():
    boxes = np.full((3, 2, 4), 5.0)
    boxes[1, 0] = np.nan
    boxes[2, 1, 2] = 0.0  # zero width
    gt = np.full((3, 4), 7.0)
    gt[2] = 0.0
    sample = TrackingSample.from_arrays(boxes, gt, "s", start=4)
    assert sample.boxes.dtype == torch.float32
    assert sample.valid.tolist() == [[True, True], [False, True], [True, False]]
    assert sample.target_valid.tolist() == [True, True, False]
    assert torch.isfinite(sample.boxes).all()
    assert sample.boxes[1, 0].abs().sum() == 0
    assert sample.boxes[2, 1].abs().sum() == 0
    assert sample.target[2].abs().sum() == 0
    assert sample.start == 4


def test_from_arrays_rejects_mismatched_target():
    with pytest.raises(ShapeError, match="Expected `target` of shape"):
        TrackingSample.from_arrays(np.ones((4, 2, 4)), np.ones((3, 4)), "s")


def test_window_is_a_slice_with_shifted_start():
    sample = _sample(8, start=0)
    window = sample.window(3, 4)
    assert window.start == 3
    assert torch.equal(window.boxes, sample.boxes[3:7])
    assert sample.window(6, 4).boxes.shape[0] == 2  # clipped at the end


def test_collate_pads_to_longest_window():
    long, short = _sample(5, name="a"), _sample(3, name="b").window(1, 2)
    batch = collate_tracking([long, short])
    assert isinstance(batch, TrackingBatch)
    assert batch.boxes.shape == (2, 5, 3, 4)
    assert (batch.batch_size, batch.num_frames, batch.num_trackers) == (2, 5, 3)
    assert batch.frame_valid.tolist() == [[True] * 5, [True, True, False, False, False]]
    assert not batch.valid[1, 2:].any()
    assert not batch.target_valid[1, 2:].any()
    assert batch.boxes[1, 2:].abs().sum() == 0
    assert torch.equal(batch.boxes[1, :2], short.boxes)
    assert batch.start.tolist() == [0, 1]
    assert batch.start.dtype == torch.long
    assert batch.sequence == ["a", "b"]


def test_collate_rejects_different_tracker_counts_and_empty_lists():
    with pytest.raises(ShapeError, match="same number of trackers"):
        collate_tracking([_sample(4, 3), _sample(4, 2)])
    with pytest.raises(ShapeError, match="at least one sample"):
        collate_tracking([])


def test_batch_checks_shapes():
    batch = collate_tracking([_sample(4)])
    with pytest.raises(ShapeError, match="Expected `valid` of shape"):
        TrackingBatch(
            batch.boxes,
            batch.valid[:, :2],
            batch.target,
            batch.target_valid,
            batch.frame_valid,
            batch.start,
            batch.sequence,
        )
    with pytest.raises(ShapeError, match="names in `sequence`"):
        TrackingBatch(
            batch.boxes,
            batch.valid,
            batch.target,
            batch.target_valid,
            batch.frame_valid,
            batch.start,
            ["x", "y"],
        )


def test_lightning_collection_helpers_understand_the_batch():
    batch = collate_tracking([_sample(4), _sample(4), _sample(2)])
    with pytest.warns(UserWarning, match="ambiguous collection"):
        assert extract_batch_size(batch) == 3  # boxes is the first field
    moved = apply_to_collection(
        batch, torch.Tensor, lambda t: t.double() if t.is_floating_point() else t
    )
    assert isinstance(moved, TrackingBatch)
    assert moved.boxes.dtype == torch.float64
    assert moved.valid.dtype == torch.bool
    assert moved.sequence == batch.sequence


def test_a_box_with_one_nan_coordinate_is_missing_and_zeroed():
    """Faulty variants: only all-NaN rows count as missing; the finite coordinates are kept."""
    boxes = np.full((2, 2, 4), 5.0)
    boxes[0, 1, 1] = np.nan  # tracker 1 on frame 0: y missing
    gt = np.full((2, 4), 7.0)
    gt[1, 3] = np.nan  # ground truth of frame 1: h missing
    sample = TrackingSample.from_arrays(boxes, gt, "s")
    assert sample.valid.tolist() == [[True, False], [True, True]]
    assert sample.target_valid.tolist() == [True, False]
    assert sample.boxes[0, 1].tolist() == [0.0] * 4
    assert sample.target[1].tolist() == [0.0] * 4


def test_reader_to_batch_marks_a_half_missing_tracker_row_invalid(tmp_path):
    """Faulty variant: the OTB reader or the batch keeps `10,nan,30,40` as a usable box."""
    from lightning_energy.datasets.otb import TrackingSequences
    from lightning_energy.datasets.tracking_windows import TrackingWindows
    from tests.datasets.otb_fixture import write_otb_layout

    root = write_otb_layout(tmp_path / "otb")
    path = root / "results" / "Tr2" / "bike.txt"
    rows = path.read_text().splitlines()
    rows[3] = "10,nan,30,40"
    path.write_text("\n".join(rows) + "\n")
    truth = root / "groundtruth" / "bike.txt"
    rows = truth.read_text().splitlines()
    rows[5] = "nan 20 30 40"
    truth.write_text("\n".join(rows) + "\n")
    (window,) = TrackingWindows(TrackingSequences.from_root(root, ["bike"]))
    batch = collate_tracking([window])
    assert batch.valid[0, :, 2].tolist() == [t != 3 for t in range(10)]
    assert int(batch.valid.sum()) == 10 * 8 - 1
    assert batch.boxes[0, 3, 2].tolist() == [0.0] * 4
    assert batch.target_valid[0].tolist() == [t != 5 for t in range(10)]
