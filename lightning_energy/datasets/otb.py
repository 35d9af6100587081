"""Reader for tracker results in the OTB text layout, at any root.

Layout (``otb100_tracker_fusion`` and ``uav123_tracker_fusion`` both follow it)::

    <root>/groundtruth/<seq>.txt          one row per frame: x,y,w,h
    <root>/results/<tracker>/<seq>.txt    same rows, the tracker's box on the same frame
    <root>/sequences.csv                  optional: sequence, split, ... [, video_group]
    <root>/trackers.csv                   optional: tracker, ..., dev_success_auc

Rows are comma-, tab- or space-separated; ``nan,nan,nan,nan`` (a tracker reported nothing, or the
target is out of view) is kept as NaN; ``0,0,0,0`` ground-truth rows are kept as they are. Which
boxes are usable is decided later (:func:`~lightning_energy.datasets.tracking_batch.box_validity`).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightning_energy.errors import DatasetFormatError, DatasetNotFoundError, reading

DEFAULT_OTB_ROOT = "../shared/data/otb100_tracker_fusion"
"""Where the OTB-100 development data lives, relative to the repository root."""

_LAYOUT_HINT = (
    "expected groundtruth/<seq>.txt and results/<tracker>/<seq>.txt; set `root` to the folder "
    f"holding them (default {DEFAULT_OTB_ROOT})"
)


def _check_root(root: str | Path) -> Path:
    path = Path(root)
    if not (path / "groundtruth").is_dir() or not (path / "results").is_dir():
        raise DatasetNotFoundError(
            f"No OTB-format tracking data at {str(root)!r} (resolved to {path.resolve()}): "
            f"{_LAYOUT_HINT}."
        )
    return path


def _missing(path: Path, root: Path) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"Missing {path} under {str(root)!r}: {_LAYOUT_HINT}.")


def read_boxes(path: str | Path) -> np.ndarray:
    """Read one OTB box file.

    Args:
        path: A text file with one ``x,y,w,h`` row per frame (comma-, tab- or space-separated).

    Returns:
        Float64 array of shape (T, 4); ``nan`` rows stay NaN. Blank lines are skipped.

    Raises:
        DatasetNotFoundError: If the file does not exist.
        DatasetFormatError: If a row does not hold exactly four numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"Missing box file {path}: {_LAYOUT_HINT}.")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        values = line.replace(",", " ").split()
        if not values:
            continue
        if len(values) != 4:
            raise DatasetFormatError(f"{path}:{number}: expected 4 values x,y,w,h, got "
                                     f"{line!r}.")
        rows.append(values)
    try:
        return np.array(rows, dtype=np.float64).reshape(-1, 4)
    except ValueError as err:
        raise DatasetFormatError(f"{path}: a row holds something that is not a number "
                                 f"({err}).") from err


def _read_csv(path: Path, required: str) -> list[dict[str, str]]:
    """The rows of a CSV table that must have the column ``required``."""
    with reading(path, f"a CSV table with a `{required}` column"), path.open(newline="") as f:
        rows = list(csv.DictReader(f))
        if rows and required not in rows[0]:
            raise KeyError(required)
        return rows


def list_sequences(root: str | Path, split: str | None = "dev") -> list[str]:
    """Names of the sequences of a split, in file order.

    Args:
        root: Dataset folder.
        split: Value of the ``split`` column of ``sequences.csv``; None for all sequences.
            Ignored when there is no ``sequences.csv`` (then every ``groundtruth/*.txt`` is listed,
            sorted).

    Returns:
        Sequence names.
    """
    path = _check_root(root)
    table = path / "sequences.csv"
    if not table.is_file():
        return sorted(p.stem for p in (path / "groundtruth").glob("*.txt"))
    rows = _read_csv(table, "sequence")
    names = [row["sequence"] for row in rows
             if split is None or row.get("split", split) == split]
    if rows and not names:
        found = sorted({row.get("split", "") for row in rows})
        raise DatasetNotFoundError(
            f"No sequence of {table} has split {split!r} (its `split` values: {found}); pass "
            f"`split` with one of them, or null for every sequence.")
    return names


def otb_video_group(sequence: str) -> str:
    """The video an OTB sequence comes from: ``Jogging-2`` → ``Jogging`` (a trailing ``-<n>``)."""
    return re.sub(r"-\d+$", "", sequence)


def sequence_groups(root: str | Path) -> dict[str, str]:
    """Map each sequence to its video, for splits that must not cut a video in two.

    Uses the ``video_group`` column of ``sequences.csv`` where present (UAV123: ``car1_1`` and
    ``car1_2`` share ``car1``), else :func:`otb_video_group` on the names (OTB: the two targets of
    ``Jogging`` and of ``Skating2``).

    Args:
        root: Dataset folder.

    Returns:
        Sequence name → group id, for every sequence of every split.
    """
    path = _check_root(root)
    table = path / "sequences.csv"
    rows = _read_csv(table, "sequence") if table.is_file() else []
    if rows and "video_group" in rows[0]:
        return {row["sequence"]: row["video_group"] for row in rows}
    return {name: otb_video_group(name) for name in list_sequences(root, split=None)}


def tracker_success_auc(root: str | Path) -> dict[str, float]:
    """Tracker name → ``dev_success_auc`` from ``trackers.csv`` (NaN when absent), in file order.

    Without ``trackers.csv`` every folder of ``results/`` is listed (sorted) with NaN.
    """
    path = _check_root(root)
    table = path / "trackers.csv"
    if not table.is_file():
        return {p.name: math.nan for p in sorted((path / "results").iterdir()) if p.is_dir()}
    return {
        row["tracker"]: float(row.get("dev_success_auc") or math.nan)
        for row in _read_csv(table, "tracker")
    }


def list_trackers(root: str | Path) -> list[str]:
    """Tracker names in the order of ``trackers.csv`` (else the sorted ``results/`` folders).

    This order is the tracker axis K of every array and batch built from ``root``.
    """
    return list(tracker_success_auc(root))


def load_sequence(
    root: str | Path, sequence: str, trackers: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Read one sequence: every tracker's boxes and the ground truth.

    Args:
        root: Dataset folder.
        sequence: Sequence name (``groundtruth/<sequence>.txt``).
        trackers: Tracker names (``results/<tracker>/<sequence>.txt``), in the order wanted on K.

    Returns:
        ``(boxes, gt)``: float64 arrays of shape (T, K, 4) and (T, 4), NaN where missing.

    Raises:
        DatasetNotFoundError: If the root or a file is missing.
        ValueError: If a result file does not have as many rows as the ground truth.
    """
    path = _check_root(root)
    gt_path = path / "groundtruth" / f"{sequence}.txt"
    if not gt_path.is_file():
        raise _missing(gt_path, path)
    gt = read_boxes(gt_path)
    boxes = np.empty((gt.shape[0], len(trackers), 4))
    for k, tracker in enumerate(trackers):
        result_path = path / "results" / tracker / f"{sequence}.txt"
        if not result_path.is_file():
            raise _missing(result_path, path)
        result = read_boxes(result_path)
        if result.shape != gt.shape:
            raise ValueError(
                f"{result_path} has {result.shape[0]} rows, expected {gt.shape[0]} like {gt_path}."
            )
        boxes[:, k] = result
    return boxes, gt


@dataclass
class TrackerResults:
    """The boxes of K trackers and the ground truth of one sequence.

    Attributes:
        sequence: Sequence name.
        boxes: Float64 array of shape (T, K, 4), ``(x, y, w, h)`` in pixels, NaN where missing.
        gt: Float64 array of shape (T, 4), NaN (or non-positive size) where absent.
    """

    sequence: str
    boxes: np.ndarray
    gt: np.ndarray

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return int(self.gt.shape[0])


@dataclass
class TrackingSequences:
    """All sequences of a dataset in memory, with a common tracker axis.

    Attributes:
        trackers: The K tracker names, in the order of the K axis.
        sequences: Sequence name → :class:`TrackerResults`, in dataset order.
        groups: Sequence name → video group (see :func:`sequence_groups`); empty when every
            sequence is its own video.

    Example:
        >>> import numpy as np
        >>> data = TrackingSequences(["a", "b"])
        >>> data.add(TrackerResults("s0", np.zeros((5, 2, 4)), np.zeros((5, 4))))
        >>> len(data), data.num_frames, data.num_trackers
        (1, 5, 2)
    """

    trackers: list[str]
    sequences: dict[str, TrackerResults] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_root(
        cls,
        root: str | Path,
        sequences: Sequence[str] | None = None,
        trackers: Sequence[str] | None = None,
        split: str | None = "dev",
    ) -> TrackingSequences:
        """Load sequences from an OTB-layout folder.

        Args:
            root: Dataset folder.
            sequences: Names to load; None loads every sequence of ``split``.
            trackers: Trackers to keep, in this order; None keeps all (:func:`list_trackers`).
            split: Used only when ``sequences`` is None.

        Returns:
            The loaded sequences.
        """
        names = list(sequences) if sequences is not None else list_sequences(root, split)
        tracker_names = list(trackers) if trackers is not None else list_trackers(root)
        data = cls(tracker_names, groups=sequence_groups(root))
        for name in names:
            boxes, gt = load_sequence(root, name, tracker_names)
            data.add(TrackerResults(name, boxes, gt))
        return data

    def add(self, item: TrackerResults) -> None:
        """Add one sequence; its tracker axis must match ``trackers``."""
        if item.boxes.shape[1:] != (len(self.trackers), 4) or item.gt.shape != (
            item.boxes.shape[0],
            4,
        ):
            raise ValueError(
                f"Expected boxes of shape (T, {len(self.trackers)}, 4) and gt (T, 4) for "
                f"{item.sequence!r}, got {item.boxes.shape} and {item.gt.shape}."
            )
        self.sequences[item.sequence] = item

    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self) -> Iterator[TrackerResults]:
        return iter(self.sequences.values())

    def __getitem__(self, name: str) -> TrackerResults:
        return self.sequences[name]

    @property
    def names(self) -> list[str]:
        """Sequence names, in order."""
        return list(self.sequences)

    @property
    def num_trackers(self) -> int:
        """K."""
        return len(self.trackers)

    @property
    def num_frames(self) -> int:
        """Total number of frames over all sequences."""
        return sum(item.num_frames for item in self)

    def subset(
        self, names: Sequence[str] | None = None, trackers: Sequence[str] | None = None
    ) -> TrackingSequences:
        """A view on some sequences and/or trackers (arrays are sliced, not reloaded).

        Raises:
            DatasetNotFoundError: If a name or tracker is not held here.
        """
        names = list(self.sequences) if names is None else list(names)
        trackers = list(self.trackers) if trackers is None else list(trackers)
        unknown = [n for n in names if n not in self.sequences]
        unknown += [t for t in trackers if t not in self.trackers]
        if unknown:
            raise DatasetNotFoundError(
                f"Unknown sequences or trackers {unknown}; available sequences {self.names}, "
                f"trackers {self.trackers}."
            )
        index = [self.trackers.index(t) for t in trackers]
        out = TrackingSequences(trackers, groups=self.groups)
        for name in names:
            item = self.sequences[name]
            out.add(TrackerResults(name, item.boxes[:, index], item.gt))
        return out
