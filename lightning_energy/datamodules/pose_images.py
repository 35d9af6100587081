"""LightningDataModule of multi-view person crops: rendered from 3D poses, or real frames."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightning_energy.datasets.h36m import DEFAULT_H36M_ROOT, load_h36m
from lightning_energy.datasets.pose_batch import PoseArrays
from lightning_energy.datasets.pose_image_folder import ImageFolderFrames
from lightning_energy.datasets.pose_images import (
    PoseImageBatch,
    RenderedPoseFrames,
    collate_pose_images,
)
from lightning_energy.datasets.pose_render import RenderConfig
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses

_SPLITS = ("train", "val", "test")


class PoseImageDataModule(pl.LightningDataModule):
    """Frames of 4 calibrated views as image crops with 3D and 2D ground truth.

    Images are **rendered** from the 3D poses (:class:`RenderedPoseFrames`: capsule bodies
    over cluttered backgrounds, see :mod:`~lightning_energy.datasets.pose_render`) unless
    ``images_root`` points at real frames (:class:`ImageFolderFrames`). Poses come from the
    Human3.6M layout at ``root``, or with ``root=None`` from :func:`generate_synthetic_poses`
    (``synthetic_frames`` training frames, a quarter of that for validation and for test, each
    split from its own seed; the subject lists are then ignored). Training crops are augmented:
    every epoch draws new seeds per view (crop jitter, colours, clutter, occluders). Validation
    and test crops are fixed: each view's seed is
    :func:`~lightning_energy.datasets.pose_render.view_seed` of its labels and ``seed``.

    Args:
        root: Human3.6M folder (``sequences.csv``, ``cameras.json``, ``S<s>/``), or None for
            synthetic poses. The default is relative to the working directory.
        train_subjects: Training subjects.
        val_subjects: Validation subjects.
        test_subjects: Test subjects; None means the validation subjects.
        actions: Keep only these actions (e.g. ``["Walking"]``); None keeps all.
        frame_stride: Keep every n-th stored (10 Hz) frame for training.
        val_frame_stride: Stride of the validation frames (default ``frame_stride``).
        test_frame_stride: Stride of the test frames (default ``frame_stride``).
        image_size: Crop side S in pixels (it overrides ``render.image_size``).
        render: Drawing settings (and crop margin/jitter for real frames); None uses
            :class:`RenderConfig`'s defaults.
        images_root: Folder of real frames ``S<s>/<sequence>/<camera id>/<frame>.jpg`` to use
            instead of rendering (needs ``root``).
        cache_dir: Folder caching the fixed (validation/test) rendered views; None renders
            every time. Keep it outside the repository.
        batch_size: Frames per batch (each with 4 views).
        num_workers: DataLoader worker processes. Rendering is CPU-bound and made of many
            small tensor operations: use several workers (each runs one thread); with 0 the
            main process renders, fastest with ``torch.set_num_threads(1)`` on a busy machine.
        seed: Seed of the synthetic poses and of the fixed images.
        max_frames_per_subject: Cap per subject, evenly spaced (for quick runs); None keeps all.
        synthetic_frames: Number of synthetic training frames.

    Example:
        >>> dm = PoseImageDataModule(root=None, synthetic_frames=4, batch_size=2, image_size=32)
        >>> dm.setup("fit")
        >>> tuple(next(iter(dm.train_dataloader())).images.shape)
        (2, 4, 3, 32, 32)
    """

    def __init__(
        self,
        root: str | None = DEFAULT_H36M_ROOT,
        train_subjects: Sequence[str] = ("S1", "S5", "S6", "S7"),
        val_subjects: Sequence[str] = ("S8",),
        test_subjects: Sequence[str] | None = None,
        actions: Sequence[str] | None = None,
        frame_stride: int = 5,
        val_frame_stride: int | None = None,
        test_frame_stride: int | None = None,
        image_size: int = 64,
        render: RenderConfig | None = None,
        images_root: str | None = None,
        cache_dir: str | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        max_frames_per_subject: int | None = None,
        synthetic_frames: int = 512,
    ) -> None:
        super().__init__()
        strides = (frame_stride, val_frame_stride or 1, test_frame_stride or 1)
        if batch_size < 1 or min(strides) < 1 or synthetic_frames < 1:
            raise ValueError(
                f"Expected positive `batch_size`, strides and `synthetic_frames`, got "
                f"{batch_size}, {strides} and {synthetic_frames}.")
        if images_root is not None and root is None:
            raise ValueError("Expected a Human3.6M `root` with `images_root` (real frames need "
                             "the real poses and cameras), got root=None.")
        self.save_hyperparameters()
        self.root = root
        self.subjects = {"train": list(train_subjects), "val": list(val_subjects),
                         "test": list(val_subjects if test_subjects is None else test_subjects)}
        self.strides = {"train": frame_stride, "val": val_frame_stride or frame_stride,
                        "test": test_frame_stride or frame_stride}
        self.actions = None if actions is None else list(actions)
        self.config = dataclasses.replace(render or RenderConfig(), image_size=image_size)
        self.images_root = images_root
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.max_frames_per_subject = max_frames_per_subject
        self.synthetic_frames = synthetic_frames
        self.datasets: dict[str, Dataset[PoseImageBatch]] = {}
        self.arrays: dict[str, PoseArrays] = {}

    def _load(self, split: str) -> PoseArrays:
        if self.root is None:
            frames = self.synthetic_frames if split == "train" else self.synthetic_frames // 4
            return generate_synthetic_poses(max(frames, 1), seed=self.seed + _SPLITS.index(split))
        return load_h36m(self.root, self.subjects[split], actions=self.actions,
                         frame_stride=self.strides[split],
                         max_frames_per_subject=self.max_frames_per_subject)  # fmt: skip

    def _dataset(self, split: str, arrays: PoseArrays) -> Dataset[PoseImageBatch]:
        augment = split == "train"
        if self.images_root is not None:
            return ImageFolderFrames(arrays, self.images_root, self.config, seed=self.seed,
                                     augment=augment)  # fmt: skip
        return RenderedPoseFrames(arrays, self.config, seed=self.seed, augment=augment,
                                  cache_dir=None if augment else self.cache_dir)  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        """Load the splits that ``stage`` needs (fit: train, val; validate: val; test: test).

        Raises:
            DatasetNotFoundError: If ``root``, ``images_root`` or a subject is missing.
        """
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                  "predict": ("test",), None: _SPLITS}[stage]  # fmt: skip
        for split in splits:
            self._ensure(split)

    def _ensure(self, split: str) -> None:
        if split not in _SPLITS:
            raise ValueError(f"Expected a split among {list(_SPLITS)}, got {split!r}.")
        if split not in self.datasets:
            self.arrays[split] = self._load(split)
            self.datasets[split] = self._dataset(split, self.arrays[split])

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"Call `setup` before asking for the {split} dataloader.")
        return DataLoader(self.datasets[split], batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, collate_fn=collate_pose_images,
                          persistent_workers=self.num_workers > 0)  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented training batches."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Fixed validation batches in dataset order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Fixed test batches in dataset order."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Fixed test batches in dataset order."""
        return self._loader("test", shuffle=False)

    def poses(self, split: str) -> Tensor:
        """Ground-truth world poses (N, J, 3), mm, of ``split``: e.g. to fit a pose model."""
        self._ensure(split)
        return torch.as_tensor(self.arrays[split].joints3d)
