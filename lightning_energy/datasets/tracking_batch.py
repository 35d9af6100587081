"""Batch types of the tracker-fusion task: windows of frames with the boxes of K trackers.

A *sample* (:class:`TrackingSample`) is one window of one sequence, unbatched; a *batch*
(:class:`TrackingBatch`) stacks samples, padding windows of unequal length. Both hold only tensors
and strings, so Lightning moves a batch to the device by itself (``apply_to_collection`` walks
dataclasses) and no ``.to(device)`` method is needed.

Box convention everywhere: ``(x, y, w, h)`` in pixels, ``(x, y)`` the top-left corner in the
1-based pixel coordinates of OTB. A box is *valid* when all four numbers are finite and
``w > 0`` and ``h > 0``; invalid boxes (a tracker's ``nan`` rows, the ``0,0,0,0`` ground-truth rows
of OTB, the ``nan`` ground-truth rows of UAV123) are stored as zeros and masked out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lightning_energy.errors import ShapeError, expect_shape


def box_validity(boxes: np.ndarray) -> np.ndarray:
    """Which boxes are usable: finite, with positive width and height.

    Args:
        boxes: Boxes ``(x, y, w, h)`` of shape (..., 4).

    Returns:
        Boolean array of shape (...).
    """
    finite = np.isfinite(boxes).all(axis=-1)
    with np.errstate(invalid="ignore"):
        positive = (boxes[..., 2] > 0) & (boxes[..., 3] > 0)
    return finite & positive


@dataclass
class TrackingSample:
    """One window of one sequence, not batched.

    Attributes:
        boxes: Tracker boxes ``(x, y, w, h)`` in pixels, float32 of shape (T, K, 4); zeros where
            ``valid`` is False.
        valid: Bool of shape (T, K): tracker k reported a usable box on frame t.
        target: Ground-truth boxes, float32 of shape (T, 4); zeros where ``target_valid`` is False.
        target_valid: Bool of shape (T,): the ground truth of frame t is a usable box.
        sequence: Name of the sequence.
        start: Index (0-based, in the sequence) of the window's first frame.
    """

    boxes: Tensor
    valid: Tensor
    target: Tensor
    target_valid: Tensor
    sequence: str
    start: int

    @classmethod
    def from_arrays(
        cls, boxes: np.ndarray, target: np.ndarray, sequence: str, start: int = 0
    ) -> TrackingSample:
        """Build a sample from raw reader arrays (NaN = missing), masking invalid boxes.

        Args:
            boxes: Tracker boxes of shape (T, K, 4), NaN where a tracker reported nothing.
            target: Ground truth of shape (T, 4), NaN or non-positive size where absent.
            sequence: Name of the sequence.
            start: Index of the first frame of the window in the sequence.

        Returns:
            The sample, float32 boxes with zeros where invalid.
        """
        expect_shape("boxes", boxes, ("T", "K", 4))
        expect_shape("target", target, (boxes.shape[0], 4))
        valid = box_validity(boxes)
        target_valid = box_validity(target)
        return cls(
            boxes=torch.from_numpy(np.where(valid[..., None], boxes, 0.0).astype(np.float32)),
            valid=torch.from_numpy(valid),
            target=torch.from_numpy(
                np.where(target_valid[:, None], target, 0.0).astype(np.float32)
            ),
            target_valid=torch.from_numpy(target_valid),
            sequence=sequence,
            start=int(start),
        )

    def window(self, start: int, length: int) -> TrackingSample:
        """Frames ``start`` to ``start + length`` (clipped) of this sample, as views."""
        stop = start + length
        return TrackingSample(
            boxes=self.boxes[start:stop],
            valid=self.valid[start:stop],
            target=self.target[start:stop],
            target_valid=self.target_valid[start:stop],
            sequence=self.sequence,
            start=self.start + start,
        )


@dataclass
class TrackingBatch:
    """A batch of windows: B windows of up to T frames, K trackers each.

    Windows shorter than T are padded at the end with zeros and ``frame_valid`` False; padded
    frames also have ``valid`` and ``target_valid`` False, so masks can be combined freely.

    Attributes:
        boxes: Tracker boxes ``(x, y, w, h)`` in pixels, float32 of shape (B, T, K, 4); zeros where
            ``valid`` is False.
        valid: Bool of shape (B, T, K): tracker k reported a usable box (finite, w > 0, h > 0).
        target: Ground-truth boxes, float32 of shape (B, T, 4); zeros where ``target_valid`` is
            False.
        target_valid: Bool of shape (B, T): finite ground truth with w > 0 and h > 0.
        frame_valid: Bool of shape (B, T): the frame exists (False on padding).
        start: Long of shape (B,): index of each window's first frame in its sequence.
        sequence: The B sequence names.

    Example:
        >>> import numpy as np
        >>> item = TrackingSample.from_arrays(np.ones((5, 3, 4)), np.ones((5, 4)), "seq")
        >>> batch = collate_tracking([item, item.window(0, 2)])
        >>> tuple(batch.boxes.shape), batch.frame_valid.sum().item()
        ((2, 5, 3, 4), 7)
    """

    boxes: Tensor
    valid: Tensor
    target: Tensor
    target_valid: Tensor
    frame_valid: Tensor
    start: Tensor
    sequence: list[str]

    def __post_init__(self) -> None:
        expect_shape("boxes", self.boxes, ("B", "T", "K", 4))
        b, t, k, _ = self.boxes.shape
        expect_shape("valid", self.valid, (b, t, k))
        expect_shape("target", self.target, (b, t, 4))
        expect_shape("target_valid", self.target_valid, (b, t))
        expect_shape("frame_valid", self.frame_valid, (b, t))
        expect_shape("start", self.start, (b,))
        if len(self.sequence) != b:
            raise ShapeError(f"Expected {b} names in `sequence`, got {len(self.sequence)}.")
        empty = (~self.valid.flatten(1).any(1)).nonzero().flatten().tolist()
        if empty:
            raise ShapeError(f"Expected a usable tracker box (`valid`) in every window, got "
                             f"windows {empty[:5]} of {[self.sequence[i] for i in empty[:5]]} "
                             "with none (every tracker missing): drop them.")

    @property
    def batch_size(self) -> int:
        """B, the number of windows."""
        return int(self.boxes.shape[0])

    @property
    def num_frames(self) -> int:
        """T, the (padded) number of frames."""
        return int(self.boxes.shape[1])

    @property
    def num_trackers(self) -> int:
        """K, the number of trackers."""
        return int(self.boxes.shape[2])

    def pin_memory(self) -> TrackingBatch:
        """Page-locked copy, for ``DataLoader(pin_memory=True)``."""
        return TrackingBatch(
            boxes=self.boxes.pin_memory(),
            valid=self.valid.pin_memory(),
            target=self.target.pin_memory(),
            target_valid=self.target_valid.pin_memory(),
            frame_valid=self.frame_valid.pin_memory(),
            start=self.start.pin_memory(),
            sequence=list(self.sequence),
        )


def _pad_stack(tensors: list[Tensor], length: int) -> Tensor:
    """Stack tensors of shape (T_i, ...) into (N, length, ...), zero-padded at the end."""
    out = tensors[0].new_zeros((len(tensors), length, *tensors[0].shape[1:]))
    for i, tensor in enumerate(tensors):
        out[i, : tensor.shape[0]] = tensor
    return out


def collate_tracking(items: list[TrackingSample]) -> TrackingBatch:
    """Stack samples into a :class:`TrackingBatch`, padding to the longest window.

    Args:
        items: Samples with the same number of trackers K; their lengths T_i may differ.

    Returns:
        A batch with T = max T_i; ``frame_valid`` marks the real frames.

    Raises:
        ShapeError: If ``items`` is empty or the samples have different K.
    """
    if not items:
        raise ShapeError("Expected at least one sample to collate, got an empty list.")
    num_trackers = {int(item.boxes.shape[1]) for item in items}
    if len(num_trackers) != 1:
        raise ShapeError(
            f"Expected samples with the same number of trackers K, got {num_trackers}."
        )
    lengths = [int(item.boxes.shape[0]) for item in items]
    length = max(lengths)
    frame_valid = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    return TrackingBatch(
        boxes=_pad_stack([item.boxes for item in items], length),
        valid=_pad_stack([item.valid for item in items], length),
        target=_pad_stack([item.target for item in items], length),
        target_valid=_pad_stack([item.target_valid for item in items], length),
        frame_valid=frame_valid,
        start=torch.tensor([item.start for item in items], dtype=torch.long),
        sequence=[item.sequence for item in items],
    )
