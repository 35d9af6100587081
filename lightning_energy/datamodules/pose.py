"""LightningDataModule for multi-view 3D pose: Human3.6M frames or synthetic ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightning_energy.datasets.h36m import load_h36m
from lightning_energy.datasets.pose_batch import PoseArrays, PoseFrames, collate_pose
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses


def loso_folds(subjects: Sequence[str]) -> list[tuple[list[str], list[str]]]:
    """Leave-one-subject-out folds: for each subject, (all the others, [that subject]).

    Example:
        >>> loso_folds(["S1", "S5", "S6"])[0]
        (['S5', 'S6'], ['S1'])
    """
    subjects = list(subjects)
    if len(subjects) < 2 or len(set(subjects)) != len(subjects):
        raise ValueError(f"Expected at least 2 distinct subjects, got {subjects}.")
    return [([s for s in subjects if s != held], [held]) for held in subjects]


class PoseDataModule(pl.LightningDataModule):
    """Frames of 4 calibrated views with 2D detections and 3D ground truth, as :class:`PoseBatch`.

    With ``root=None`` the data is synthetic (:func:`generate_synthetic_poses` with the built-in
    tiny PPCA model): ``synthetic_frames`` training frames and ``max(synthetic_frames // 4, 1)``
    validation and test frames, each split from its own seed; the subject lists are then
    ignored. Otherwise frames are read from the staged Human3.6M layout at ``root`` (e.g.
    ``"../shared/data/h36m_multiview_sh"``).

    Leave-one-subject-out: with ``fold`` (a subject of ``subjects``) the test subject is
    ``fold``, the training subjects are the other ``subjects``, and validation is the first
    training subject (a subset of the training frames with ``val_frame_stride``: for monitoring
    and for choosing untrained settings such as a grid search, not for checkpoint choice). The
    explicit subject lists are then ignored.

    Args:
        root: Human3.6M folder, or None for synthetic data.
        train_subjects: Training subjects.
        val_subjects: Validation subjects.
        test_subjects: Test subjects; None means the validation subjects (the development copy
            of the data lacks the standard test subjects S9 and S11).
        fold: Held-out subject of a leave-one-subject-out split of ``subjects`` (see above).
        subjects: The subjects a ``fold`` splits.
        actions: Keep only these actions (e.g. ``["Walking"]``); None keeps all.
        frame_stride: Keep every n-th stored frame for training (stored frames are at 10 Hz).
        val_frame_stride: Stride of the validation frames (default ``frame_stride``).
        test_frame_stride: Stride of the test frames (default ``frame_stride``).
        batch_size: Frames per batch.
        num_workers: DataLoader worker processes.
        synthetic_frames: Number of synthetic training frames.
        seed: Seed of the synthetic data.
        max_frames_per_subject: Cap per subject, evenly spaced (for quick runs); None keeps all.

    Example:
        >>> dm = PoseDataModule(batch_size=8, synthetic_frames=32)
        >>> dm.setup("fit")
        >>> tuple(next(iter(dm.train_dataloader())).joints2d.shape)
        (8, 4, 17, 2)
    """

    #: Joins a loader's items into one batch.
    collate: Callable[[Sequence[Any]], Any] = staticmethod(collate_pose)

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
        batch_size: int = 256,
        num_workers: int = 0,
        synthetic_frames: int = 2048,
        seed: int = 0,
        max_frames_per_subject: int | None = None,
    ) -> None:
        super().__init__()
        strides = (frame_stride, val_frame_stride or 1, test_frame_stride or 1)
        if batch_size < 1 or min(strides) < 1 or synthetic_frames < 1:
            raise ValueError(
                f"Expected positive `batch_size`, strides and `synthetic_frames`, got "
                f"{batch_size}, {strides} and {synthetic_frames}."
            )
        self.save_hyperparameters()
        self.root = root
        self.fold = fold
        self.subjects = self._subjects(train_subjects, val_subjects, test_subjects, fold,
                                       subjects)
        self.strides = {"train": frame_stride, "val": val_frame_stride or frame_stride,
                        "test": test_frame_stride or frame_stride}
        self.actions = None if actions is None else list(actions)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.synthetic_frames = synthetic_frames
        self.seed = seed
        self.max_frames_per_subject = max_frames_per_subject
        self.datasets: dict[str, Dataset[Any]] = {}
        self.arrays: dict[str, PoseArrays] = {}

    @staticmethod
    def _subjects(train: Sequence[str], val: Sequence[str], test: Sequence[str] | None,
                  fold: str | None, subjects: Sequence[str]) -> dict[str, list[str]]:
        if fold is None:
            return {"train": list(train), "val": list(val),
                    "test": list(val if test is None else test)}
        others = [s for s in subjects if s != fold]
        if fold not in subjects or not others:
            raise ValueError(f"Expected `fold` to be one of `subjects` {list(subjects)} (with "
                             f"others left to train on), got {fold!r}.")
        return {"train": others, "val": others[:1], "test": [fold]}

    def _load(self, split: str) -> PoseArrays:
        if self.root is None:
            offset = {"train": 0, "val": 1, "test": 2}[split]
            if self.fold is not None:  # each fold its own synthetic subjects
                offset += 3 * (1 + list(self.hparams["subjects"]).index(self.fold))
            frames = self.synthetic_frames if split == "train" else self.synthetic_frames // 4
            return generate_synthetic_poses(max(frames, 1), seed=self.seed + offset)
        return load_h36m(
            self.root,
            self.subjects[split],
            actions=self.actions,
            frame_stride=self.strides[split],
            max_frames_per_subject=self.max_frames_per_subject,
        )

    def setup(self, stage: str | None = None) -> None:
        """Load the splits that ``stage`` needs (fit: train, val; validate: val; test: test).

        Raises:
            DatasetNotFoundError: If a requested subject is missing under ``root``.
        """
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                  "predict": ("test",), None: ("train", "val", "test")}[stage]  # fmt: skip
        for split in splits:
            self._ensure(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"Call `setup` before asking for the {split} dataloader.")
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in dataset order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in dataset order."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Test batches in dataset order."""
        return self._loader("test", shuffle=False)

    def eval_dataloader(self, split: str) -> DataLoader:
        """Batches of ``split`` (``"train"``, ``"val"``, ``"test"``) in dataset order."""
        self._ensure(split)
        return self._loader(split, shuffle=False)

    def poses(self, split: str) -> Tensor:
        """Ground-truth world poses (N, J, 3), mm, of ``split``: e.g. to re-fit a pose model."""
        self._ensure(split)
        return torch.as_tensor(self.arrays[split].joints3d)

    def _ensure(self, split: str) -> None:
        if split not in self.subjects:
            raise ValueError(f"Expected a split among {sorted(self.subjects)}, got {split!r}.")
        if split not in self.datasets:
            self.arrays[split] = self._load(split)
            self.datasets[split] = self._dataset(split, self.arrays[split])

    def _dataset(self, split: str, arrays: PoseArrays) -> Dataset[Any]:
        """The dataset of a split's frames (a subclass may render them, say)."""
        return PoseFrames(arrays)
