"""Training windows (or whole sequences) of tracker boxes, as a map-style dataset."""

from __future__ import annotations

from torch.utils.data import Dataset

from lightning_energy.datasets.otb import TrackingSequences
from lightning_energy.datasets.tracking_batch import TrackingSample


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """First frames of the windows covering a sequence of ``length`` frames.

    Windows start every ``stride`` frames; one more, ending on the last frame, is added when the
    stride leaves the tail uncovered. A sequence shorter than ``window`` gives one (short) window.
    """
    last = max(length - window, 0)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


class TrackingWindows(Dataset[TrackingSample]):
    """Windows of ``window`` frames (or whole sequences) of :class:`TrackingSequences`.

    Args:
        data: The sequences.
        window: Frames per window; None gives one item per whole sequence.
        stride: Frames between window starts; defaults to ``window // 2``.
    """

    def __init__(
        self, data: TrackingSequences, window: int | None = None, stride: int | None = None,
    ) -> None:
        self.samples = [
            TrackingSample.from_arrays(item.boxes, item.gt, item.sequence) for item in data
        ]
        self.window = window
        self.index: list[tuple[int, int]] = []
        for i, sample in enumerate(self.samples):
            length = int(sample.boxes.shape[0])
            if window is None:
                self.index.append((i, 0))
            else:
                step = stride if stride is not None else max(window // 2, 1)
                self.index += [(i, start) for start in window_starts(length, window, step)]

    def __len__(self) -> int:
        return len(self.index)

    def sequence_balanced_weights(self) -> list[float]:
        """Sampling weight of each window: 1 / (number of windows of its sequence).

        Every sequence is then drawn equally often, as the sequence-averaged OTB metrics weigh
        them (uniform window sampling lets the longest sequences dominate the loss).
        """
        counts: dict[int, int] = {}
        for i, _ in self.index:
            counts[i] = counts.get(i, 0) + 1
        return [1.0 / counts[i] for i, _ in self.index]

    def __getitem__(self, index: int) -> TrackingSample:
        i, start = self.index[index]
        sample = self.samples[i]
        return sample if self.window is None else sample.window(start, self.window)
