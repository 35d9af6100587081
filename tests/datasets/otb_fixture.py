"""A generated OTB-layout folder whose videos hold several sequences (made up, not real data).

Real benchmarks cut one video into several sequences (UAV123: ``car1_1``, ``car1_2``, ``car1_3``
share the video ``car1``; OTB: ``Jogging-1``, ``Jogging-2``); a split that keeps sequences apart
but not videos leaks frames of one video into both training and test. The tiny hand-written
fixture ``tests/fixtures/otb_tiny`` has one such video among three development sequences, too
few for k folds and a validation carve-out at once, so split tests write this larger one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Video → number of sequences cut from it (9 of 12 videos hold several: 23 sequences).
VIDEOS = {"bike": 1, "car": 3, "person": 2, "boat": 1, "truck": 2, "bird": 2, "wake": 3,
          "group": 2, "uav": 1, "road": 2, "building": 2, "crowd": 2}
TRACKERS = tuple(f"Tr{k}" for k in range(8))
FRAMES = 10


def sequence_names() -> dict[str, str]:
    """Sequence → video, UAV123-style names (``car_1``; single-sequence videos keep the name)."""
    names = {}
    for video, parts in VIDEOS.items():
        for part in range(1, parts + 1):
            names[video if parts == 1 else f"{video}_{part}"] = video
    return names


def write_otb_layout(root: Path, seed: int = 0) -> Path:
    """Write ground truth, 8 trackers' results and ``sequences.csv`` (with ``video_group``).

    Returns:
        ``root``.
    """
    rng = np.random.default_rng(seed)
    (root / "groundtruth").mkdir(parents=True)
    names = sequence_names()
    rows = ["sequence,split,n_frames,video_group"]
    for name, video in names.items():
        path = np.cumsum(rng.normal(0, 2, (FRAMES, 2)), 0) + 100
        truth = np.concatenate([path, np.full((FRAMES, 2), 30.0)], 1)
        _write(root / "groundtruth" / f"{name}.txt", truth)
        for tracker in TRACKERS:
            noisy = truth + rng.normal(0, 3, truth.shape)
            _write(root / "results" / tracker / f"{name}.txt", noisy)
        rows.append(f"{name},dev,{FRAMES},{video}")
    (root / "sequences.csv").write_text("\n".join(rows) + "\n")
    return root


def _write(path: Path, boxes: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, boxes, fmt="%.3f", delimiter=",")
