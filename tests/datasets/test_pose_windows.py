"""Windows over sequences: every frame predicted exactly once, padding marked, strides scored."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_energy.datasets.pose_synthetic import generate_synthetic_sequences
from lightning_energy.datasets.pose_windows import (
    PoseWindows,
    collate_windows,
    covering_windows,
    sequence_runs,
    training_windows,
)


def test_runs_group_frames_by_subject_and_sequence_in_frame_order():
    arrays = generate_synthetic_sequences(3, 5, seed=0)
    shuffled = arrays.select(np.random.default_rng(0).permutation(len(arrays)))
    runs = sequence_runs(shuffled)
    assert sorted(len(r) for r in runs) == [5, 5, 5]
    for run in runs:
        assert len(set(shuffled.sequence[run])) == 1
        assert np.all(np.diff(shuffled.frame[run]) > 0)
    # the same sequence name under two subjects is two runs
    arrays.subject[:5] = "other"
    arrays.sequence[:] = "seq"
    assert len(sequence_runs(arrays)) == 2


@pytest.mark.parametrize(("length", "size", "overlap"),
                         [(1, 4, 0), (4, 4, 1), (5, 4, 1), (23, 6, 2), (40, 16, 4), (17, 3, 2)])
def test_covering_windows_predict_every_frame_exactly_once(length, size, overlap):
    """Faulty variant: overlapping frames owned by both windows (counted twice in metrics)."""
    runs = [np.arange(length) + 100, np.arange(3)]
    windows = covering_windows(runs, size, overlap)
    owned = np.concatenate([w.indices[w.owned] for w in windows])
    assert sorted(owned.tolist()) == sorted(np.concatenate(runs).tolist())
    for w in windows:
        assert len(w.indices) == size
        assert not (w.owned & ~w.real).any()
        assert np.all(np.diff(w.indices[w.real]) == 1)  # consecutive frames of one run


def test_training_windows_start_every_step_and_pad_short_runs():
    """Faulty variant: a fixed grid of starts that never trains on a run's last frames."""
    windows = training_windows([np.arange(11), np.arange(20, 23)], size=4, step=3)
    starts = [int(w.indices[0]) for w in windows]
    assert starts == [0, 3, 6, 7, 20]
    short = windows[-1]
    assert short.indices.tolist() == [20, 21, 22, 22]
    assert short.real.tolist() == [True, True, True, False]


def test_overlaps_are_split_between_neighbouring_windows():
    """Faulty variant: the earlier (or the later) window owning the whole overlap."""
    windows = covering_windows([np.arange(14)], size=6, overlap=2)  # starts 0, 4, 8
    assert [int(w.indices[0]) for w in windows] == [0, 4, 8]
    # frames 4, 5 are shared by the first two: 4 is deeper in the first, 5 in the second
    assert windows[0].owned.tolist() == [True] * 5 + [False]
    assert windows[1].owned.tolist() == [False] + [True] * 4 + [False]
    assert windows[2].owned.tolist() == [False] + [True] * 5


def test_scored_frames_are_owned_real_frames_on_the_stride():
    arrays = generate_synthetic_sequences(2, 11, seed=1)
    data = PoseWindows(arrays, covering_windows(sequence_runs(arrays), 4, 1), score_stride=4)
    batch = collate_windows([data[i] for i in range(len(data))])
    frames = batch.frames.frame.reshape(batch.real.shape)
    assert sorted(frames[batch.scored].tolist()) == [0, 0, 4, 4, 8, 8]
    assert batch.batch_size == 6
    assert batch.frames.joints2d.shape[0] == len(data) * 4


def test_windows_of_different_lengths_are_not_collated():
    arrays = generate_synthetic_sequences(1, 6, seed=0)
    runs = sequence_runs(arrays)
    a = PoseWindows(arrays, covering_windows(runs, 3, 0))[0]
    b = PoseWindows(arrays, covering_windows(runs, 2, 0))[0]
    with pytest.raises(ValueError, match="windows of one length"):
        collate_windows([a, b])
    with pytest.raises(ValueError, match="overlap"):
        covering_windows(runs, 3, 3)
