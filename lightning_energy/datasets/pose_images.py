"""Multi-view person crops with their poses: :class:`PoseImageBatch` and the rendered dataset.

:class:`RenderedPoseFrames` renders the C views of each frame of a
:class:`~lightning_energy.datasets.pose_batch.PoseArrays` on the fly
(:func:`~lightning_energy.datasets.pose_render.render_view`); the reader of real frames on disk,
:class:`~lightning_energy.datasets.pose_image_folder.ImageFolderFrames`, returns the same batch
type. Both work inside ``DataLoader`` workers; use :func:`collate_pose_images` as ``collate_fn``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_energy.datasets.pose_batch import CAMERA_IDS, PoseArrays, PoseBatch
from lightning_energy.datasets.pose_render import (
    RenderConfig,
    RenderedView,
    render_view,
    view_seed,
)
from lightning_energy.errors import expect_shape

_CAMERA_FIELDS = ("R", "T", "f", "c", "k", "p")


@dataclass
class PoseImageBatch(PoseBatch):
    """A :class:`PoseBatch` with one image crop per view.

    Here ``joints2d`` holds the ground-truth 2D keypoints (the projection of ``joints3d`` with
    each camera's distortion, all J joints, in full-image pixels) and ``visible`` is False only
    for a joint behind the camera, so a detector can be supervised with them; compare it with
    detections in crop pixels through
    :func:`~lightning_energy.datasets.pose_render.image_to_crop`.

    Attributes:
        images: (B, C, 3, S, S) float RGB crops in [0, 1].
        crop: (B, C, 3) crop transforms (scale, u0, v0): full-image pixel = (u0, v0) + crop
            pixel / scale.
        occluded: (B, C, J) bool, or None: the joint is hidden in that view (by the person
            itself, a distractor or an occluder in rendered images) or outside the crop.

    Example:
        >>> from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
        >>> frames = RenderedPoseFrames(generate_synthetic_poses(2, seed=0),
        ...                             RenderConfig(image_size=32))
        >>> batch = collate_pose_images([frames[0], frames[1]])
        >>> tuple(batch.images.shape), tuple(batch.crop.shape), tuple(batch.joints2d.shape)
        ((2, 4, 3, 32, 32), (2, 4, 3), (2, 4, 17, 2))
    """

    images: Tensor
    crop: Tensor
    occluded: Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        b, c, j = self.visible.shape
        expect_shape("images", self.images, (b, c, 3, "S", "S"))
        expect_shape("crop", self.crop, (b, c, 3))
        if self.occluded is not None:
            expect_shape("occluded", self.occluded, (b, c, j))

    @staticmethod
    def cat(batches: Sequence[PoseBatch]) -> PoseImageBatch:
        """Concatenate batches along the batch axis."""
        if not batches:
            raise ValueError("Expected at least one PoseImageBatch to concatenate, got none.")
        first = batches[0]
        if len(batches) == 1 and isinstance(first, PoseImageBatch):
            return first
        values: dict[str, Any] = {}
        for field in dataclasses.fields(PoseImageBatch):
            parts = [getattr(b, field.name) for b in batches]
            if any(part is None for part in parts):
                values[field.name] = None
            elif isinstance(parts[0], Tensor):
                values[field.name] = torch.cat(parts)
            else:
                values[field.name] = [s for p in parts for s in p]
        return PoseImageBatch(**values)


def collate_pose_images(items: Sequence[PoseImageBatch]) -> PoseImageBatch:
    """``collate_fn`` for :class:`RenderedPoseFrames` and ``ImageFolderFrames``."""
    return PoseImageBatch.cat(items)


def image_batch(arrays: PoseArrays, indices: np.ndarray, views: Sequence[Sequence[RenderedView]],
                dtype: torch.dtype = torch.float32) -> PoseImageBatch:
    """Gather frames and their views (``views[b][c]``) into a :class:`PoseImageBatch`.

    ``joints2d``/``visible`` become the views' ground-truth keypoints (NaN = behind the camera).
    """
    base = arrays.to_batch(indices, dtype=dtype)
    keypoints = torch.stack([torch.stack([v.keypoints for v in frame]) for frame in views])
    visible = torch.isfinite(keypoints).all(-1)
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(PoseBatch)}
    values.update(
        joints2d=torch.nan_to_num(keypoints, nan=0.0).to(dtype),
        visible=visible,
        images=torch.stack([torch.stack([v.image for v in frame]) for frame in views]).to(dtype),
        crop=torch.stack([torch.stack([v.crop for v in frame]) for frame in views]).to(dtype),
        occluded=torch.stack([torch.stack([v.occluded for v in frame]) for frame in views]),
    )
    return PoseImageBatch(**values)


def camera_of(arrays: PoseArrays, index: int, camera: int) -> dict[str, np.ndarray]:
    """Calibration (R, T, f, c, k, p) of view ``camera`` of frame ``index``."""
    rig = arrays.camera_index[index]
    return {name: getattr(arrays.cameras, name)[rig, camera] for name in _CAMERA_FIELDS}


class ViewFrames(Dataset[PoseImageBatch], ABC):
    """Frames whose C views are made one at a time by :meth:`view`.

    A loader's indices (``__getitems__``) become one :class:`PoseImageBatch`, which
    :func:`collate_pose_images` passes through.
    """

    arrays: PoseArrays
    dtype: torch.dtype

    @abstractmethod
    def view(self, index: int, camera: int) -> RenderedView:
        """View ``camera`` of frame ``index``: its crop, the crop transform, the keypoints."""

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> PoseImageBatch:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[PoseImageBatch]:
        idx = np.asarray(indices, dtype=np.int64)
        views = [[self.view(int(i), c) for c in range(self.arrays.cameras.R.shape[1])]
                 for i in idx]  # fmt: skip
        return [image_batch(self.arrays, idx, views, self.dtype)]


class RenderedPoseFrames(ViewFrames):
    """Frames of a :class:`PoseArrays` with each view rendered as a crop, on the fly.

    ``dataset[i]`` is a :class:`PoseImageBatch` of size 1 (``__getitems__`` renders a whole
    batch of indices in one call, as :class:`~lightning_energy.datasets.pose_batch.PoseFrames`).

    Args:
        arrays: The frames (real or synthetic poses with their cameras).
        config: Drawing settings; None uses :class:`RenderConfig`'s defaults.
        seed: Seed of the fixed images: view c of a frame uses
            ``view_seed(subject, sequence, frame, camera id, seed)``, so validation and test
            images are the same in every run and process.
        augment: If True, every access draws fresh seeds from torch's global RNG instead (new
            crop jitter, colours, clutter and occluders each epoch; reproducible under
            ``seed_everything`` and the ``DataLoader``'s per-worker seeding).
        cache_dir: Folder for one ``.npz`` per rendered view (keyed by frame, camera, seed,
            settings and pose); reused by later runs. Not used with ``augment``. Keep it outside
            the repository.
        dtype: Floating dtype of the batch tensors.

    Example:
        >>> from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
        >>> frames = RenderedPoseFrames(generate_synthetic_poses(3, seed=0))
        >>> tuple(frames[2].images.shape)
        (1, 4, 3, 64, 64)
    """

    def __init__(self, arrays: PoseArrays, config: RenderConfig | None = None, seed: int = 0,
                 augment: bool = False, cache_dir: str | Path | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        self.arrays = arrays
        self.config = config or RenderConfig()
        self.seed = seed
        self.augment = augment
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.dtype = dtype

    def view_seed(self, index: int, camera: int) -> int:
        """The seed of view ``camera`` of frame ``index`` (fresh each call with ``augment``)."""
        if self.augment:
            return int(torch.randint(2**31 - 1, ()))
        a = self.arrays
        return view_seed(str(a.subject[index]), str(a.sequence[index]), int(a.frame[index]),
                         CAMERA_IDS[camera] if camera < len(CAMERA_IDS) else camera, self.seed)

    def view(self, index: int, camera: int) -> RenderedView:
        """Render (or read from the cache) view ``camera`` of frame ``index``."""
        seed = self.view_seed(index, camera)
        joints = self.arrays.joints3d[index]
        cams = camera_of(self.arrays, index, camera)
        path = None if self.augment or self.cache_dir is None else self._cache_path(
            index, camera, seed, joints, cams)
        if path is not None and path.is_file():
            return _load_view(path)
        view = render_view(joints, **cams, config=self.config, seed=seed)
        if path is not None:
            _save_view(path, view)
        return view

    def _cache_path(self, index: int, camera: int, seed: int, joints: np.ndarray,
                    cams: dict[str, np.ndarray]) -> Path:
        digest = hashlib.sha1(np.ascontiguousarray(joints, dtype=np.float32).tobytes())
        for name in _CAMERA_FIELDS:
            digest.update(np.ascontiguousarray(cams[name], dtype=np.float64).tobytes())
        a = self.arrays
        name = (f"{a.subject[index]}_{a.sequence[index]}_{a.frame[index]}_{camera}_{seed}_"
                f"{self.config.fingerprint()}_{digest.hexdigest()[:12]}.npz")
        return self.cache_dir / name  # type: ignore[operator]


def _save_view(path: Path, view: RenderedView) -> None:
    """Write atomically (several loader workers may render the same view)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as file:
        np.savez(file, **{f.name: getattr(view, f.name).numpy()
                          for f in dataclasses.fields(RenderedView)})  # fmt: skip
    os.replace(tmp, path)


def _load_view(path: Path) -> RenderedView:
    with np.load(path) as data:
        return RenderedView(**{f.name: torch.from_numpy(data[f.name])
                               for f in dataclasses.fields(RenderedView)})  # fmt: skip
