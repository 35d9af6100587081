"""LightningDataModule of multi-view person crops: rendered from 3D poses, or real frames."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from torch.utils.data import Dataset

from lightning_energy.datamodules.pose import PoseDataModule
from lightning_energy.datasets.h36m import DEFAULT_H36M_ROOT
from lightning_energy.datasets.pose_batch import PoseArrays
from lightning_energy.datasets.pose_image_folder import ImageFolderFrames
from lightning_energy.datasets.pose_images import (
    PoseImageBatch,
    RenderedPoseFrames,
    collate_pose_images,
)
from lightning_energy.datasets.pose_render import RenderConfig


class PoseImageDataModule(PoseDataModule):
    """Frames of 4 calibrated views as image crops with 3D and 2D ground truth.

    A :class:`~lightning_energy.datamodules.PoseDataModule` (subjects, folds, strides,
    synthetic poses) whose frames carry images.

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
        fold: Held-out subject of a leave-one-subject-out split of ``subjects``
            (:class:`~lightning_energy.datamodules.PoseDataModule`).
        subjects: The subjects a ``fold`` splits.
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

    collate = staticmethod(collate_pose_images)

    def __init__(
        self,
        root: str | None = DEFAULT_H36M_ROOT,
        train_subjects: Sequence[str] = ("S1", "S5", "S6", "S7"),
        val_subjects: Sequence[str] = ("S8",),
        test_subjects: Sequence[str] | None = None,
        fold: str | None = None,
        subjects: Sequence[str] = ("S1", "S5", "S6", "S7", "S8"),
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
        if images_root is not None and root is None:
            raise ValueError("Expected a Human3.6M `root` with `images_root` (real frames need "
                             "the real poses and cameras), got root=None.")
        super().__init__(root, train_subjects, val_subjects, test_subjects, fold, subjects,
                         actions, frame_stride, val_frame_stride, test_frame_stride, batch_size,
                         num_workers, synthetic_frames, seed, max_frames_per_subject)
        self.config = dataclasses.replace(render or RenderConfig(), image_size=image_size)
        self.images_root = images_root
        self.cache_dir = cache_dir

    def _dataset(self, split: str, arrays: PoseArrays) -> Dataset[PoseImageBatch]:
        """Rendered (or read) crops: training ones drawn anew at every access, the others fixed."""
        augment = split == "train"
        if self.images_root is not None:
            return ImageFolderFrames(arrays, self.images_root, self.config, seed=self.seed,
                                     augment=augment)  # fmt: skip
        return RenderedPoseFrames(arrays, self.config, seed=self.seed, augment=augment,
                                  cache_dir=None if augment else self.cache_dir)  # fmt: skip
