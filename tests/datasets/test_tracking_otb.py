import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from lightning_energy.datasets.otb import (
    TrackerResults,
    TrackingSequences,
    list_sequences,
    list_trackers,
    load_sequence,
    otb_video_group,
    read_boxes,
    sequence_groups,
    tracker_success_auc,
)
from lightning_energy.datasets.tracking_batch import box_validity
from lightning_energy.errors import DatasetNotFoundError

TINY = Path(__file__).parents[1] / "fixtures" / "otb_tiny"
REAL_OTB = Path(__file__).parents[2] / "../shared/data/otb100_tracker_fusion"


@pytest.fixture
def tiny_copy(tmp_path: Path) -> Path:
    root = tmp_path / "otb_tiny"
    shutil.copytree(TINY, root)
    return root


def test_read_boxes_comma_file_with_nan_row_and_blank_line():
    boxes = read_boxes(TINY / "results" / "TrC" / "SeqA.txt")
    assert boxes.shape == (6, 4)
    assert boxes.dtype == np.float64
    assert np.isnan(boxes[3]).all()
    assert boxes[2].tolist() == [30, 40, 31, 41]


def test_read_boxes_tab_and_comma_space_files():
    tabbed = read_boxes(TINY / "groundtruth" / "SeqB-1.txt")
    assert tabbed.shape == (5, 4)
    assert tabbed[0].tolist() == [100, 50, 20, 10]
    assert tabbed[4].tolist() == [0, 0, 0, 0]  # kept as is, invalid later
    spaced = read_boxes(TINY / "groundtruth" / "SeqB-2.txt")
    assert spaced[6].tolist() == [11, 6, 7, 8]


def test_read_boxes_reports_bad_rows(tmp_path: Path):
    path = tmp_path / "bad.txt"
    path.write_text("1,2,3,4\n1,2,3\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 4 values"):
        read_boxes(path)
    path.write_text("1,2,3,4\n1,2,x,4\n")
    with pytest.raises(ValueError, match="not a number"):
        read_boxes(path)


def test_list_sequences_by_split():
    assert list_sequences(TINY) == ["SeqA", "SeqB-1", "SeqB-2"]
    assert list_sequences(TINY, "test") == ["SeqC"]
    assert list_sequences(TINY, None) == ["SeqA", "SeqB-1", "SeqB-2", "SeqC"]


def test_trackers_follow_trackers_csv_order_with_auc():
    assert list_trackers(TINY) == ["TrB", "TrA", "TrC"]
    assert tracker_success_auc(TINY) == {"TrB": 0.61, "TrA": 0.72, "TrC": 0.35}


def test_load_sequence_stacks_trackers_in_the_given_order():
    boxes, gt = load_sequence(TINY, "SeqA", ["TrC", "TrB"])
    assert boxes.shape == (6, 2, 4)
    assert gt.shape == (6, 4)
    assert np.isnan(boxes[3, 0]).all()
    assert boxes[1, 1].tolist() == [13, 22, 30, 40]
    np.testing.assert_array_equal(boxes[0, 0], gt[0])


def test_without_csv_files_uses_folders(tiny_copy: Path):
    (tiny_copy / "sequences.csv").unlink()
    (tiny_copy / "trackers.csv").unlink()
    assert list_sequences(tiny_copy, "dev") == ["SeqA", "SeqB-1", "SeqB-2", "SeqC"]
    assert list_trackers(tiny_copy) == ["TrA", "TrB", "TrC"]
    assert all(math.isnan(v) for v in tracker_success_auc(tiny_copy).values())
    assert sequence_groups(tiny_copy)["SeqB-2"] == "SeqB"


def test_groups_from_names_or_video_group_column(tiny_copy: Path):
    groups = sequence_groups(TINY)
    assert groups["SeqB-1"] == groups["SeqB-2"] == "SeqB"
    assert groups["SeqA"] == "SeqA"
    assert otb_video_group("Skating2-1") == "Skating2"
    assert otb_video_group("Skating2") == "Skating2"
    (tiny_copy / "sequences.csv").write_text(
        "sequence,split,n_frames,video_group\nSeqA,dev,6,v1\nSeqB-1,dev,5,v2\n"
        "SeqB-2,dev,7,v1\nSeqC,test,5,v3\n"
    )
    assert sequence_groups(tiny_copy) == {
        "SeqA": "v1",
        "SeqB-1": "v2",
        "SeqB-2": "v1",
        "SeqC": "v3",
    }


def test_missing_root_message(tmp_path: Path):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as info:
        list_sequences(root)
    message = str(info.value)
    assert str(root) in message
    assert "groundtruth/<seq>.txt" in message
    assert "results/<tracker>/<seq>.txt" in message
    assert "set `root`" in message
    assert "otb100_tracker_fusion" in message
    with pytest.raises(DatasetNotFoundError):
        TrackingSequences.from_root(root)


def test_missing_files_are_named(tiny_copy: Path):
    (tiny_copy / "results" / "TrA" / "SeqB-2.txt").unlink()
    with pytest.raises(
        DatasetNotFoundError, match=r"results/TrA/SeqB-2\.txt.*expected groundtruth"
    ):
        load_sequence(tiny_copy, "SeqB-2", ["TrA"])
    with pytest.raises(DatasetNotFoundError, match=r"groundtruth/Nope\.txt"):
        load_sequence(tiny_copy, "Nope", ["TrA"])
    with pytest.raises(DatasetNotFoundError, match=r"results/TrZ/SeqA\.txt"):
        load_sequence(tiny_copy, "SeqA", ["TrZ"])


def test_row_count_mismatch_is_an_error(tiny_copy: Path):
    path = tiny_copy / "results" / "TrB" / "SeqC.txt"
    path.write_text("1,1,4,4\n")
    with pytest.raises(ValueError, match="has 1 rows, expected 5"):
        load_sequence(tiny_copy, "SeqC", ["TrA", "TrB"])


def test_tracking_sequences_container():
    data = TrackingSequences.from_root(TINY)
    assert data.names == ["SeqA", "SeqB-1", "SeqB-2"]
    assert data.trackers == ["TrB", "TrA", "TrC"]
    assert (len(data), data.num_trackers, data.num_frames) == (3, 3, 18)
    assert data["SeqB-2"].boxes.shape == (7, 3, 4)
    assert data.groups["SeqB-1"] == "SeqB"
    sub = data.subset(["SeqB-2"], ["TrC", "TrB"])
    np.testing.assert_array_equal(sub["SeqB-2"].boxes[:, 1], data["SeqB-2"].boxes[:, 0])
    assert sub.trackers == ["TrC", "TrB"]
    with pytest.raises(DatasetNotFoundError, match="Unknown sequences or trackers"):
        data.subset(["SeqZ"])
    with pytest.raises(ValueError, match=r"Expected boxes of shape \(T, 3, 4\)"):
        data.add(TrackerResults("x", np.zeros((4, 2, 4)), np.zeros((4, 4))))


@pytest.mark.skipif(not REAL_OTB.is_dir(), reason=f"OTB-100 tracker data not found at {REAL_OTB}")
def test_real_otb_counts_match_source_md():
    data = TrackingSequences.from_root(REAL_OTB)
    assert len(data) == 70
    assert data.num_trackers == 25
    assert data.num_frames == 34847
    assert len(list_sequences(REAL_OTB, None)) == 70
    aucs = tracker_success_auc(REAL_OTB)
    assert all(0.0 < value < 1.0 for value in aucs.values())
    assert not box_validity(data["Twinnings"].gt[-1])  # last gt row is 0,0,0,0
    assert np.isnan(data["Twinnings"].boxes[-1, data.trackers.index("MDNet")]).all()
    tld = np.concatenate([item.boxes[:, data.trackers.index("TLD")] for item in data])
    assert np.isnan(tld).any()
