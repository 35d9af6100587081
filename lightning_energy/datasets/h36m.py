"""Reader for the staged Human3.6M multi-view layout (3D ground truth + stacked-hourglass 2D).

Layout under ``root`` (see ``h36m_multiview_sh/SOURCE.md``)::

    sequences.csv            subject, sequence, action, file, n_frames_stored, ...
    cameras.json             {"camera_order": [...], "subjects": {"S1": [4 cameras], ...}}
    S<s>/<sequence>.npz      joints3d_world (T, 17, 3) mm, joints2d_sh (4, T, 17, 2) px
                             (NaN = missing), frame_index (T,), ...

Frames are stored at 10 Hz (every 5th frame of the 50 Hz recordings); ``frame`` keeps the 50 Hz
index. The whole development part (S1, S5, S6, S7, S8: 73,279 frames) fits in memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightning_energy.datasets.pose_batch import CAMERA_IDS, CameraArrays, PoseArrays
from lightning_energy.errors import DatasetNotFoundError, reading

#: Default dataset root, relative to the working directory (the repository root).
DEFAULT_H36M_ROOT = "../shared/data/h36m_multiview_sh"
#: Subjects of Human3.6M; S9 and S11 are the standard test subjects.
H36M_SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
#: The 15 Human3.6M actions (``action`` column; sequence names add a recording suffix).
H36M_ACTIONS = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "WalkTogether", "Walking",
)  # fmt: skip


@dataclass(frozen=True)
class SequenceInfo:
    """One row of ``sequences.csv``."""

    subject: str
    sequence: str
    action: str
    file: str
    num_frames: int


def _resolve_root(root: str | Path | None) -> Path:
    path = Path(DEFAULT_H36M_ROOT if root is None else root)
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"Human3.6M root '{path}' does not exist (resolved: '{path.resolve()}'). Pass the "
            f"folder holding sequences.csv, cameras.json and S<s>/ as `root`; the default root is "
            f"'{DEFAULT_H36M_ROOT}', relative to the working directory."
        )
    return path


def _missing_subject(root: Path, subject: str, what: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"Human3.6M subject '{subject}' not found under root '{root}': {what}. Choose subjects "
        f"that are staged there or point `root` elsewhere; the default root is "
        f"'{DEFAULT_H36M_ROOT}' (S9 and S11 are held out of the development copy)."
    )


def read_sequences(root: str | Path | None = None) -> list[SequenceInfo]:
    """Parse ``sequences.csv`` under ``root``.

    Raises:
        DatasetNotFoundError: If the root or the file is missing.
    """
    path = _resolve_root(root) / "sequences.csv"
    if not path.is_file():
        raise DatasetNotFoundError(f"Missing '{path}'; the default root is '{DEFAULT_H36M_ROOT}'.")
    with reading(path, "columns subject, sequence, action, file, n_frames_stored"), \
            path.open(newline="") as handle:
        return [
            SequenceInfo(
                row["subject"], row["sequence"], row["action"], row["file"],
                int(row["n_frames_stored"]),
            )
            for row in csv.DictReader(handle)
        ]


def read_cameras(root: str | Path | None, subjects: Sequence[str]) -> CameraArrays:
    """Read the calibration of ``subjects`` from ``cameras.json`` (one rig per subject, in order).

    Cameras come in the order 54138969, 55011271, 58860488, 60457274. ``R`` is
    ``R_world_to_camera`` (the transpose of the matrix stored in the original Human3.6M file).

    Raises:
        DatasetNotFoundError: If the file or a subject's entry is missing.
    """
    base = _resolve_root(root)
    path = base / "cameras.json"
    if not path.is_file():
        raise DatasetNotFoundError(f"Missing '{path}'; the default root is '{DEFAULT_H36M_ROOT}'.")
    keys = {"R": "R_world_to_camera", "T": "T_camera_centre_world_mm", "f": "f", "c": "c",
            "k": "k", "p": "p"}  # fmt: skip
    expected = (f"JSON {{'subjects': {{subject: [camera with camera_id, "
                f"{', '.join(keys.values())}]}}}} for cameras {list(CAMERA_IDS)}, f > 0")
    values: dict[str, list[np.ndarray]] = {name: [] for name in keys}
    with reading(path, expected):
        table = json.loads(path.read_text())["subjects"]
        for subject in subjects:
            if subject not in table:
                raise _missing_subject(base, subject, f"no entry in '{path}'")
            cams = {cam["camera_id"]: cam for cam in table[subject]}
            for name, key in keys.items():
                values[name].append(np.array([cams[cid][key] for cid in CAMERA_IDS],
                                             dtype=np.float64))
            if not (values["f"][-1] > 0).all():
                raise ValueError(f"focal lengths `f` of {subject} {values['f'][-1].tolist()}")
    return CameraArrays(**{name: np.stack(v) for name, v in values.items()})


def _read_sequence(base: Path, info: SequenceInfo, rig: int, stride: int) -> PoseArrays:
    path = base / info.file
    expected = (f"an .npz with camera_ids (holding {list(CAMERA_IDS)}), joints2d_sh (4, T, 17, "
                "2), joints3d_world (T, 17, 3), frame_index (T,)")
    with reading(path, expected), np.load(path) as data:
        order = [list(data["camera_ids"]).index(cid) for cid in CAMERA_IDS]
        joints2d = np.moveaxis(data["joints2d_sh"][order], 0, 1)[::stride]
        joints3d = data["joints3d_world"][::stride]
        frame = data["frame_index"][::stride].astype(np.int64)
    n = joints3d.shape[0]
    return PoseArrays(
        joints2d=np.ascontiguousarray(joints2d, dtype=np.float32),
        joints3d=np.ascontiguousarray(joints3d, dtype=np.float32),
        frame=frame,
        subject=np.full(n, info.subject),
        sequence=np.full(n, info.sequence),
        action=np.full(n, info.action),
        camera_index=np.full(n, rig, dtype=np.int64),
        cameras=CameraArrays(*(np.zeros((0, 4, d)) for d in (3, 3, 2, 2, 3, 2))),
    )


def _check_actions(actions: Sequence[str] | None, rows: Sequence[SequenceInfo]) -> None:
    known = sorted({r.action for r in rows})
    unknown = sorted(set(actions or ()) - set(known))
    if unknown:
        raise ValueError(f"Unknown actions {unknown}; the dataset has {known}.")


def _subsample(arrays: PoseArrays, max_frames: int | None) -> PoseArrays:
    if max_frames is None or len(arrays) <= max_frames:
        return arrays
    return arrays.select(np.linspace(0, len(arrays) - 1, max_frames).round().astype(np.int64))


def load_h36m(
    root: str | Path | None = None,
    subjects: Sequence[str] = ("S1", "S5", "S6", "S7", "S8"),
    actions: Sequence[str] | None = None,
    frame_stride: int = 1,
    max_frames_per_subject: int | None = None,
) -> PoseArrays:
    """Load the frames of ``subjects`` into memory.

    Args:
        root: Dataset folder; ``None`` means :data:`DEFAULT_H36M_ROOT` (relative to the working
            directory).
        subjects: Subjects to load, e.g. ``["S1", "S5"]``.
        actions: Keep only these actions (names without suffix, e.g. ``"Walking"``); ``None``
            keeps all.
        frame_stride: Keep every ``frame_stride``-th stored frame of each sequence (the stored
            frames are already at 10 Hz).
        max_frames_per_subject: Keep at most this many frames per subject, evenly spaced over
            its sequences (for quick runs); ``None`` keeps all.

    Returns:
        The frames, subject by subject, sequences in ``sequences.csv`` order; one camera rig per
        subject.

    Raises:
        DatasetNotFoundError: If the root, its index files or a subject are missing; the message
            names the path, the subject and the default root.
        ValueError: For an unknown action or a non-positive stride.

    Example:
        >>> frames = load_h36m(subjects=["S1"], actions=["Walking"])  # doctest: +SKIP
    """
    if frame_stride < 1:
        raise ValueError(f"Expected `frame_stride` >= 1, got {frame_stride}.")
    base = _resolve_root(root)
    rows = read_sequences(base)
    _check_actions(actions, rows)
    cameras = read_cameras(base, subjects)
    parts = []
    for rig, subject in enumerate(subjects):
        mine = [r for r in rows if r.subject == subject]
        if not mine or not (base / subject).is_dir():
            what = f"no folder '{base / subject}' or no rows in sequences.csv"
            raise _missing_subject(base, subject, what)
        chosen = [r for r in mine if actions is None or r.action in actions]
        seqs = [_read_sequence(base, r, rig, frame_stride) for r in chosen]
        if seqs:
            parts.append(_subsample(PoseArrays.concatenate(seqs), max_frames_per_subject))
    if not parts:
        raise ValueError(f"No frames for subjects {list(subjects)} and actions {actions}.")
    arrays = PoseArrays.concatenate(parts)
    arrays.cameras = cameras
    return arrays
