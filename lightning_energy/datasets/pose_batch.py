"""Multi-view 3D pose data: in-memory arrays, a frame dataset and the :class:`PoseBatch` type.

Conventions shared by the Human3.6M reader (:mod:`lightning_energy.datasets.h36m`) and the synthetic
generator (:mod:`lightning_energy.datasets.pose_synthetic`):

* 17 joints in the Human3.6M order: 0 Hip, 1 RHip, 2 RKnee, 3 RFoot, 4 LHip, 5 LKnee, 6 LFoot,
  7 Spine, 8 Thorax, 9 Neck/Nose, 10 Head, 11 LShoulder, 12 LElbow, 13 LWrist, 14 RShoulder,
  15 RElbow, 16 RWrist. Joint 9 is never detected by the stacked-hourglass detector.
* 4 cameras in the order 54138969, 55011271, 58860488, 60457274.
* 3D points in the world frame, millimetres, z up (floor at z ≈ 0).
* 2D points in pixels (u, v), origin at the top-left corner of the image.
* Cameras: ``R`` rotates world to camera coordinates, ``T`` is the camera centre in the world
  (mm), so a world point P is at ``R @ (P - T)`` in camera coordinates; ``f``, ``c`` are focal
  lengths and principal point in pixels, ``k`` radial and ``p`` tangential distortion
  (see :func:`lightning_energy.energies.cameras.project_perspective`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_energy.errors import ShapeError, expect_shape

NUM_JOINTS = 17
NUM_CAMERAS = 4
UNDETECTED_JOINT = 9
JOINT_NAMES = (
    "Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax", "Neck/Nose",
    "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
)  # fmt: skip
CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
#: Pairs (right, left) of joint indices, used to simulate left/right swaps.
LEFT_RIGHT_PAIRS = ((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13))

_CAMERA_FIELDS = ("R", "T", "f", "c", "k", "p")


@dataclass
class CameraArrays:
    """A table of camera rigs (NumPy, float64); frames point into it by index.

    Attributes:
        R: (S, C, 3, 3) world→camera rotations.
        T: (S, C, 3) camera centres in the world frame, mm.
        f: (S, C, 2) focal lengths, pixels.
        c: (S, C, 2) principal points, pixels.
        k: (S, C, 3) radial distortion coefficients.
        p: (S, C, 2) tangential distortion coefficients.
    """

    R: np.ndarray
    T: np.ndarray
    f: np.ndarray
    c: np.ndarray
    k: np.ndarray
    p: np.ndarray

    def __len__(self) -> int:
        return int(self.R.shape[0])

    @staticmethod
    def concatenate(tables: Sequence[CameraArrays]) -> CameraArrays:
        """Stack several tables along the rig axis S."""
        return CameraArrays(
            **{name: np.concatenate([getattr(t, name) for t in tables]) for name in _CAMERA_FIELDS}
        )


@dataclass
class PoseArrays:
    """Multi-view pose frames held in memory as NumPy arrays (the reader's output).

    Attributes:
        joints2d: (N, C, J, 2) float32 detections in pixels; NaN marks a missing detection.
        joints3d: (N, J, 3) float32 ground-truth joints, world frame, mm.
        frame: (N,) int64 frame index in the original 50 Hz sequence.
        subject: (N,) str subject of each frame (``"S1"``, …).
        sequence: (N,) str sequence name (``"Directions_1"``, …).
        action: (N,) str action name without the recording suffix (``"Directions"``, …).
        camera_index: (N,) int64 row of ``cameras`` holding the frame's rig.
        cameras: the camera rigs.
    """

    joints2d: np.ndarray
    joints3d: np.ndarray
    frame: np.ndarray
    subject: np.ndarray
    sequence: np.ndarray
    action: np.ndarray
    camera_index: np.ndarray
    cameras: CameraArrays

    def __post_init__(self) -> None:
        n = self.joints3d.shape[0]
        expect_shape("joints2d", self.joints2d, (n, "C", "J", 2))
        expect_shape("joints3d", self.joints3d, (n, "J", 3))
        for name in ("frame", "subject", "sequence", "action", "camera_index"):
            expect_shape(name, getattr(self, name), (n,))

    def __len__(self) -> int:
        return int(self.joints3d.shape[0])

    def select(self, indices: np.ndarray) -> PoseArrays:
        """The frames at ``indices`` (an integer array or a boolean mask of length N)."""
        return dataclasses.replace(
            self,
            **{
                name: getattr(self, name)[indices]
                for name in (
                    "joints2d", "joints3d", "frame", "subject", "sequence", "action",
                    "camera_index",
                )
            },
        )  # fmt: skip

    @staticmethod
    def concatenate(parts: Sequence[PoseArrays]) -> PoseArrays:
        """Concatenate frames; camera tables are stacked and the indices shifted."""
        if not parts:
            raise ValueError("Expected at least one PoseArrays to concatenate, got none.")
        offsets = np.cumsum([0] + [len(p.cameras) for p in parts[:-1]])
        return PoseArrays(
            joints2d=np.concatenate([p.joints2d for p in parts]),
            joints3d=np.concatenate([p.joints3d for p in parts]),
            frame=np.concatenate([p.frame for p in parts]),
            subject=np.concatenate([p.subject for p in parts]),
            sequence=np.concatenate([p.sequence for p in parts]),
            action=np.concatenate([p.action for p in parts]),
            camera_index=np.concatenate(
                [p.camera_index + o for p, o in zip(parts, offsets, strict=True)]
            ),
            cameras=CameraArrays.concatenate([p.cameras for p in parts]),
        )

    def to_batch(
        self, indices: np.ndarray | None = None, dtype: torch.dtype = torch.float32
    ) -> PoseBatch:
        """Gather frames into a :class:`PoseBatch` (NaN detections become 0 and invisible).

        Args:
            indices: (B,) integer indices of the frames; ``None`` takes all frames.
            dtype: Floating dtype of the batch tensors.
        """
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        joints2d = self.joints2d[idx]
        visible = ~np.isnan(joints2d).any(axis=-1)
        rig = self.camera_index[idx]
        cams = {name: torch.as_tensor(getattr(self.cameras, name)[rig], dtype=dtype)
                for name in _CAMERA_FIELDS}  # fmt: skip
        return PoseBatch(
            # Both coordinates of a detection missing one (NaN) are zeroed, not only the NaN.
            joints2d=torch.as_tensor(np.where(visible[..., None], joints2d, 0.0), dtype=dtype),
            visible=torch.as_tensor(visible),
            joints3d=torch.as_tensor(self.joints3d[idx], dtype=dtype),
            subject=self.subject[idx].tolist(),
            action=self.action[idx].tolist(),
            sequence=self.sequence[idx].tolist(),
            frame=torch.as_tensor(self.frame[idx], dtype=torch.long),
            **cams,
        )


@dataclass
class PoseBatch:
    """A batch of multi-view pose frames.

    Attributes:
        joints2d: (B, C, J, 2) 2D detections in pixels; entries that are not visible are 0.
        visible: (B, C, J) bool, False where the detector gave nothing (always False for joint 9
            with stacked-hourglass detections).
        joints3d: (B, J, 3) ground-truth joints, world frame, mm.
        R: (B, C, 3, 3) world→camera rotations.
        T: (B, C, 3) camera centres in the world frame, mm.
        f: (B, C, 2) focal lengths, pixels.
        c: (B, C, 2) principal points, pixels.
        k: (B, C, 3) radial distortion coefficients.
        p: (B, C, 2) tangential distortion coefficients.
        subject: B subject names.
        action: B action names.
        sequence: B sequence names.
        frame: (B,) long frame index at 50 Hz.

    Example:
        >>> from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
        >>> batch = generate_synthetic_poses(8, seed=0).to_batch()
        >>> tuple(batch.joints2d.shape), len(batch)
        ((8, 4, 17, 2), 8)
    """

    joints2d: Tensor
    visible: Tensor
    joints3d: Tensor
    R: Tensor
    T: Tensor
    f: Tensor
    c: Tensor
    k: Tensor
    p: Tensor
    subject: list[str]
    action: list[str]
    sequence: list[str]
    frame: Tensor

    def __post_init__(self) -> None:
        b, c, j = self.visible.shape
        if self.visible.dtype != torch.bool:
            raise ShapeError(f"Expected `visible` of dtype torch.bool, got {self.visible.dtype}.")
        expect_shape("joints2d", self.joints2d, (b, c, j, 2))
        expect_shape("joints3d", self.joints3d, (b, j, 3))
        for name, tail in (("R", (3, 3)), ("T", (3,)), ("f", (2,)), ("c", (2,)), ("k", (3,)),
                           ("p", (2,))):  # fmt: skip
            expect_shape(name, getattr(self, name), (b, c, *tail))
        expect_shape("frame", self.frame, (b,))
        for name in ("subject", "action", "sequence"):
            if len(getattr(self, name)) != b:
                got = len(getattr(self, name))
                raise ShapeError(f"Expected `{name}` of length {b}, got {got}.")
        _check_contents(self.visible, self.f)

    def __len__(self) -> int:
        return int(self.visible.shape[0])

    def to(
        self,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        non_blocking: bool = False,
    ) -> PoseBatch:
        """Move tensors to ``device``; cast floating tensors to ``dtype`` (bool/long unchanged).

        Lightning calls this to move a batch to the accelerator.
        """
        changes: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Tensor):
                cast = dtype if dtype is not None and value.is_floating_point() else None
                changes[field.name] = value.to(device=device, dtype=cast, non_blocking=non_blocking)
        return dataclasses.replace(self, **changes)

    def select(self, mask: Tensor) -> PoseBatch:
        """The frames where ``mask`` (B,) bool is True."""
        keep = mask.nonzero().flatten()
        changes: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            changes[field.name] = (value[keep] if isinstance(value, Tensor)
                                   else [value[i] for i in keep.tolist()])
        return dataclasses.replace(self, **changes)

    @staticmethod
    def cat(batches: Sequence[PoseBatch]) -> PoseBatch:
        """Concatenate batches along the batch axis."""
        if not batches:
            raise ValueError("Expected at least one PoseBatch to concatenate, got none.")
        if len(batches) == 1:
            return batches[0]
        values: dict[str, Any] = {}
        for field in dataclasses.fields(PoseBatch):
            parts = [getattr(b, field.name) for b in batches]
            values[field.name] = (
                torch.cat(parts) if isinstance(parts[0], Tensor) else [s for p in parts for s in p]
            )
        return PoseBatch(**values)


def collate_pose(items: Sequence[PoseBatch]) -> PoseBatch:
    """``collate_fn`` for :class:`PoseFrames`: concatenate the items (each a batch) into one."""
    return PoseBatch.cat(items)


class PoseFrames(Dataset[PoseBatch]):
    """A map-style dataset of multi-view frames; ``dataset[i]`` is a :class:`PoseBatch` of size 1.

    ``__getitems__`` gathers a whole batch of indices at once (PyTorch's ``DataLoader`` uses it
    when present), so use :func:`collate_pose` as the loader's ``collate_fn``.

    Args:
        arrays: The frames, from :func:`~lightning_energy.datasets.h36m.load_h36m` or
            :func:`~lightning_energy.datasets.pose_synthetic.generate_synthetic_poses`.
        dtype: Floating dtype of the returned tensors.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
        >>> frames = PoseFrames(generate_synthetic_poses(10, seed=0))
        >>> batch = next(iter(DataLoader(frames, batch_size=4, collate_fn=collate_pose)))
        >>> tuple(batch.joints3d.shape)
        (4, 17, 3)
    """

    def __init__(self, arrays: PoseArrays, dtype: torch.dtype = torch.float32) -> None:
        self.arrays = arrays
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> PoseBatch:
        return self.arrays.to_batch(np.array([index]), dtype=self.dtype)

    def __getitems__(self, indices: Sequence[int]) -> list[PoseBatch]:
        return [self.arrays.to_batch(np.asarray(indices), dtype=self.dtype)]


def _check_contents(visible: Tensor, f: Tensor) -> None:
    """Every frame sees a joint somewhere, every camera has positive focal lengths."""
    blind = (~visible.flatten(1).any(1)).nonzero().flatten().tolist()
    if blind:
        raise ShapeError(f"Expected a visible joint in some view of every frame (`visible`), got "
                         f"frames {blind[:5]} with none (all-NaN detections?): drop them.")
    cameras = (~(f > 0)).any(-1).any(0).nonzero().flatten().tolist()
    if cameras:
        raise ShapeError(f"Expected focal lengths `f` > 0 (pixels), got {float(f.min())} at "
                         f"cameras {cameras}: check the calibration.")
