"""Windows of consecutive frames of one sequence, for sequence energies over multi-view pose.

A window is T consecutive stored frames of one (subject, sequence). Training draws windows that
overlap by half; evaluation covers every sequence with windows overlapping by ``overlap`` frames
and gives each frame to exactly one window (the one where it lies farthest from an edge), so
every stored frame is predicted once. A sequence shorter than T is padded with copies of its last
frame marked ``real = False`` (a sequence energy weighs them zero).
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

from lightning_energy.datasets.pose_batch import PoseArrays, PoseBatch


def sequence_runs(arrays: PoseArrays) -> list[np.ndarray]:
    """Indices of each (subject, sequence)'s frames, in frame order; sequences as first seen."""
    keys = [f"{s}\x00{q}" for s, q in zip(arrays.subject, arrays.sequence, strict=True)]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    runs = []
    for group in np.argsort(first):
        members = np.flatnonzero(inverse == group)
        runs.append(members[np.argsort(arrays.frame[members], kind="stable")])
    return runs


def _pad(indices: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    real = np.zeros(size, dtype=bool)
    real[: len(indices)] = True
    padded = np.concatenate([indices, np.repeat(indices[-1:], size - len(indices))])
    return padded, real


@dataclass
class Window:
    """One window: frame indices (T,), which are real frames and which it predicts (owned)."""

    indices: np.ndarray
    real: np.ndarray
    owned: np.ndarray


def training_windows(runs: Sequence[np.ndarray], size: int, step: int) -> list[Window]:
    """Windows of ``size`` frames every ``step`` frames of each run; each owns its real frames.

    The last window of a run ends flush with it, so no frame is left out.
    """
    if not 1 <= step <= size:
        raise ValueError(f"Expected 1 <= `step` <= window size {size}, got {step}.")
    windows = []
    for run in runs:
        starts = list(range(0, max(len(run) - size, 0) + 1, step))
        if starts[-1] + size < len(run):
            starts.append(len(run) - size)
        for start in starts:
            indices, real = _pad(run[start : start + size], size)
            windows.append(Window(indices, real, real.copy()))
    return windows


def covering_windows(runs: Sequence[np.ndarray], size: int, overlap: int) -> list[Window]:
    """Windows covering every run, each frame owned by exactly one window.

    Windows start every ``size − overlap`` frames, the last one flush with the run's end; a frame
    is owned by the window where it is farthest from an edge (the earlier one on ties).
    """
    if not 0 <= overlap < size:
        raise ValueError(f"Expected 0 <= `overlap` < window size {size}, got {overlap}.")
    windows = []
    for run in runs:
        n = len(run)
        starts = list(range(0, max(n - size, 0) + 1, size - overlap))
        if starts[-1] + size < n:
            starts.append(n - size)
        position = np.arange(n)[:, None]
        begin = np.asarray(starts)[None, :]
        depth = np.minimum(position - begin, begin + size - 1 - position)
        depth = np.where((position >= begin) & (position < begin + size), depth, -1)
        owner = depth.argmax(1)  # first maximum: the earlier window on ties
        for k, start in enumerate(starts):
            indices, real = _pad(run[start : start + size], size)
            owned = np.zeros(size, dtype=bool)
            mine = np.flatnonzero(owner == k) - start
            owned[mine] = True
            windows.append(Window(indices, real, owned))
    return windows


@dataclass
class PoseWindowBatch:
    """A batch of B windows of T frames, the frames flattened window-major into a PoseBatch.

    Attributes:
        frames: The B·T frames (window b's frame t at row b·T + t).
        window_size: T.
        real: (B, T) bool, False for padding.
        scored: (B, T) bool, the frames a loss or metric counts: real, owned by this window and
            (for evaluation) on the protocol's frame stride.
    """

    frames: PoseBatch
    window_size: int
    real: Tensor
    scored: Tensor

    def __post_init__(self) -> None:
        b = self.real.shape[0]
        if len(self.frames) != b * self.window_size or self.scored.shape != self.real.shape:
            raise ValueError(f"Expected {b}·{self.window_size} frames and `scored` of shape "
                             f"{tuple(self.real.shape)}, got {len(self.frames)} and "
                             f"{tuple(self.scored.shape)}.")

    def __len__(self) -> int:
        return int(self.real.shape[0])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           non_blocking: bool = False) -> PoseWindowBatch:
        """Move tensors to ``device``; cast the frames' floating tensors to ``dtype``."""
        return dataclasses.replace(
            self, frames=self.frames.to(device, dtype, non_blocking),
            real=self.real.to(device, non_blocking=non_blocking),
            scored=self.scored.to(device, non_blocking=non_blocking))

    @property
    def batch_size(self) -> int:
        """The number of scored frames (what metrics average over)."""
        return int(self.scored.sum())


class PoseWindows(Dataset[Any]):
    """Windows of a :class:`PoseArrays` (module docstring); collate with :func:`collate_windows`.

    Args:
        arrays: The frames (every stored frame of each sequence, in any order).
        windows: From :func:`training_windows` or :func:`covering_windows`.
        score_stride: Score only every ``score_stride``-th frame of each sequence (the
            evaluation protocol's frames); 1 scores every owned frame.
        dtype: Floating dtype of the frames.

    Example:
        >>> from lightning_energy.datasets.pose_synthetic import generate_synthetic_sequences
        >>> arrays = generate_synthetic_sequences(2, 10, seed=0)
        >>> data = PoseWindows(arrays, covering_windows(sequence_runs(arrays), 4, 1))
        >>> batch = collate_windows([data[i] for i in range(len(data))])
        >>> len(batch), batch.window_size, int(batch.scored.sum())
        (6, 4, 20)
    """

    def __init__(self, arrays: PoseArrays, windows: Sequence[Window], score_stride: int = 1,
                 dtype: torch.dtype = torch.float32) -> None:
        if score_stride < 1:
            raise ValueError(f"Expected `score_stride` >= 1, got {score_stride}.")
        self.arrays, self.windows, self.dtype = arrays, list(windows), dtype
        position = np.empty(len(arrays), dtype=np.int64)
        for run in sequence_runs(arrays):
            position[run] = np.arange(len(run))
        self.on_stride = position % score_stride == 0

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[PoseBatch, np.ndarray, np.ndarray]:
        window = self.windows[index]
        scored = window.owned & window.real & self.on_stride[window.indices]
        return self.arrays.to_batch(window.indices, dtype=self.dtype), window.real, scored


def collate_windows(items: Sequence[tuple[PoseBatch, np.ndarray, np.ndarray]]) -> PoseWindowBatch:
    """``collate_fn`` of :class:`PoseWindows`: B windows of equal length into one batch."""
    sizes = {len(frames) for frames, _, _ in items}
    if len(sizes) != 1:
        raise ValueError(f"Expected windows of one length in a batch, got lengths {sorted(sizes)}.")
    return PoseWindowBatch(PoseBatch.cat([frames for frames, _, _ in items]), sizes.pop(),
                           torch.as_tensor(np.stack([real for _, real, _ in items])),
                           torch.as_tensor(np.stack([scored for _, _, scored in items])))
