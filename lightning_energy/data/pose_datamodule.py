"""LightningDataModule for multi-view 3D pose: Human3.6M frames or synthetic ones."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from lightning_energy.data.h36m import load_h36m
from lightning_energy.data.pose_batch import PoseArrays, PoseFrames, collate_pose
from lightning_energy.data.pose_synthetic import generate_synthetic_poses


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
    tiny PPCA model): ``synthetic_frames`` training frames from ``seed``, and
    ``max(synthetic_frames // 4, 1)`` validation and test frames from ``seed + 1`` and
    ``seed + 2``; the subject lists are then ignored. Otherwise frames are read from the staged
    Human3.6M layout at ``root`` (e.g. ``"../shared/data/h36m_multiview_sh"``).

    Args:
        root: Human3.6M folder, or None for synthetic data.
        train_subjects: Training subjects.
        val_subjects: Validation subjects.
        test_subjects: Test subjects; None means the validation subjects (the development copy
            of the data lacks the standard test subjects S9 and S11).
        actions: Keep only these actions (e.g. ``["Walking"]``); None keeps all.
        frame_stride: Keep every n-th stored frame (stored frames are already at 10 Hz).
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

    def __init__(
        self,
        root: str | None = None,
        train_subjects: Sequence[str] = ("S1", "S5", "S6", "S7"),
        val_subjects: Sequence[str] = ("S8",),
        test_subjects: Sequence[str] | None = None,
        actions: Sequence[str] | None = None,
        frame_stride: int = 1,
        batch_size: int = 256,
        num_workers: int = 0,
        synthetic_frames: int = 2048,
        seed: int = 0,
        max_frames_per_subject: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1 or frame_stride < 1 or synthetic_frames < 1:
            raise ValueError(
                f"Expected positive `batch_size`, `frame_stride` and `synthetic_frames`, got "
                f"{batch_size}, {frame_stride} and {synthetic_frames}."
            )
        self.save_hyperparameters()
        self.root = root
        self.subjects = {
            "train": list(train_subjects),
            "val": list(val_subjects),
            "test": list(val_subjects if test_subjects is None else test_subjects),
        }
        self.actions = None if actions is None else list(actions)
        self.frame_stride = frame_stride
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.synthetic_frames = synthetic_frames
        self.seed = seed
        self.max_frames_per_subject = max_frames_per_subject
        self.datasets: dict[str, PoseFrames] = {}

    def _load(self, split: str) -> PoseArrays:
        if self.root is None:
            offset = {"train": 0, "val": 1, "test": 2}[split]
            frames = self.synthetic_frames if split == "train" else self.synthetic_frames // 4
            return generate_synthetic_poses(max(frames, 1), seed=self.seed + offset)
        return load_h36m(
            self.root,
            self.subjects[split],
            actions=self.actions,
            frame_stride=self.frame_stride,
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
            if split not in self.datasets:
                self.datasets[split] = PoseFrames(self._load(split))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"Call `setup` before asking for the {split} dataloader.")
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_pose,
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
