"""LightningDataModule of windows of consecutive multi-view frames, for sequence pose energies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from lightning_energy.datamodules.pose import PoseDataModule
from lightning_energy.datasets.pose_batch import PoseArrays
from lightning_energy.datasets.pose_synthetic import generate_synthetic_sequences
from lightning_energy.datasets.pose_windows import (
    PoseWindows,
    collate_windows,
    covering_windows,
    sequence_runs,
    training_windows,
)


class PoseSequenceDataModule(PoseDataModule):
    """Windows of ``window`` consecutive frames of one sequence, as :class:`PoseWindowBatch`.

    The splits, folds and subjects are :class:`PoseDataModule`'s. Every split is read at
    ``frame_stride`` (windows see consecutive frames at one rate, so a learned smoothness means
    the same in training and test). Training windows start every ``train_window_step`` frames;
    validation and test windows cover every sequence, overlapping by ``eval_overlap`` frames,
    each frame predicted by exactly one window, and score every ``val_frame_stride`` /
    ``test_frame_stride``-th stored frame of each sequence — the frames the per-frame recipe
    tests — so the two recipes' numbers compare the same frames with the sequence recipe seeing
    its neighbours too. ``batch_size`` counts windows.

    With ``root=None`` the data is synthetic: :func:`generate_synthetic_sequences` of
    ``synthetic_sequence_length`` frames, ``synthetic_frames`` frames for training and a quarter
    as many for validation and test.

    The other arguments are :class:`PoseDataModule`'s; the strides must be multiples of
    ``frame_stride``, and ``max_frames_per_subject`` (which picks frames apart) is refused.

    Args:
        window: Frames per window T.
        train_window_step: Start a training window every this many frames (default T // 2).
        eval_overlap: Overlap of evaluation windows (default T // 4).
        synthetic_sequence_length: Frames per synthetic sequence.
        val_sequences: Validate on the first this many sequences of the validation subjects
            only (validation covers whole sequences, every stored frame; None keeps all).

    Example:
        >>> dm = PoseSequenceDataModule(window=8, batch_size=2, synthetic_frames=64)
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.train_dataloader()))
        >>> tuple(batch.frames.joints2d.shape), tuple(batch.real.shape)
        ((16, 4, 17, 2), (2, 8))
    """

    collate = staticmethod(collate_windows)

    def __init__(
        self,
        root: str | None = None,
        train_subjects: Sequence[str] = ("S1", "S5", "S6", "S7"),
        val_subjects: Sequence[str] = ("S8",),
        test_subjects: Sequence[str] | None = None,
        fold: str | None = None,
        subjects: Sequence[str] = ("S1", "S5", "S6", "S7", "S8"),
        actions: Sequence[str] | None = None,
        frame_stride: int = 1,
        val_frame_stride: int | None = None,
        test_frame_stride: int | None = None,
        window: int = 16,
        train_window_step: int | None = None,
        eval_overlap: int | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        synthetic_frames: int = 512,
        synthetic_sequence_length: int = 32,
        val_sequences: int | None = None,
        seed: int = 0,
        max_frames_per_subject: int | None = None,
    ) -> None:
        if max_frames_per_subject is not None:
            raise ValueError("PoseSequenceDataModule reads whole sequences (windows need "
                             "consecutive frames); got `max_frames_per_subject`="
                             f"{max_frames_per_subject}: limit the data with `actions` instead.")
        super().__init__(root, train_subjects, val_subjects, test_subjects, fold, subjects,
                         actions, frame_stride, val_frame_stride, test_frame_stride, batch_size,
                         num_workers, synthetic_frames, seed, max_frames_per_subject)
        step = max(window // 2, 1) if train_window_step is None else train_window_step
        overlap = window // 4 if eval_overlap is None else eval_overlap
        if (window < 1 or step < 1 or not 0 <= overlap < window or synthetic_sequence_length < 1
                or (val_sequences is not None and val_sequences < 1)):
            raise ValueError(f"Expected `window` >= 1, `train_window_step` >= 1, 0 <= "
                             f"`eval_overlap` < `window`, `synthetic_sequence_length` >= 1 and "
                             f"`val_sequences` >= 1 or None, got {window}, {step}, {overlap}, "
                             f"{synthetic_sequence_length}, {val_sequences}.")
        self.val_sequences = val_sequences
        self.score_strides = {}
        for split, stride in self.strides.items():
            if stride % frame_stride:
                raise ValueError(f"Expected the {split} frame stride ({stride}) to be a multiple "
                                 f"of `frame_stride` ({frame_stride}).")
            self.score_strides[split] = stride // frame_stride
            self.strides[split] = frame_stride
        self.window, self.train_window_step, self.eval_overlap = window, step, overlap
        self.synthetic_sequence_length = synthetic_sequence_length

    def _load(self, split: str) -> PoseArrays:
        arrays = self._read(split)
        if split != "val" or self.val_sequences is None:
            return arrays
        return arrays.select(np.concatenate(sequence_runs(arrays)[: self.val_sequences]))

    def _read(self, split: str) -> PoseArrays:
        if self.root is not None:
            return super()._load(split)
        offset = {"train": 0, "val": 1, "test": 2}[split]
        if self.fold is not None:
            offset += 3 * (1 + list(self.hparams["subjects"]).index(self.fold))
        frames = self.synthetic_frames if split == "train" else self.synthetic_frames // 4
        length = self.synthetic_sequence_length
        return generate_synthetic_sequences(max(frames // length, 1), length,
                                            seed=self.seed + offset)

    def _dataset(self, split: str, arrays: PoseArrays) -> Dataset[Any]:
        runs = sequence_runs(arrays)
        if split == "train":
            windows = training_windows(runs, self.window, self.train_window_step)
        else:
            windows = covering_windows(runs, self.window, self.eval_overlap)
        return PoseWindows(arrays, windows, score_stride=self.score_strides[split])
