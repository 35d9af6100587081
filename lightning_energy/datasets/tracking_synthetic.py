"""Simulated trackers on simulated tracks, returning the arrays of the OTB reader.

The ground truth is a smooth box track: an AR(1) velocity integrated into a centre that bounces off
the image borders, and a random walk of the log-size kept within a factor of two of the start. A
distractor (a second, independent track of similar size) moves in the same image. Each simulated
tracker has a :class:`TrackerProfile`: per-frame jitter, a slowly drifting offset, a slowly
varying scale error, episodes in which it follows the distractor instead of the target, and
episodes in which it reports nothing (NaN rows). As in the OTB one-pass evaluation, every
tracker's first box is the ground truth (initialisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lightning_energy.datasets.otb import TrackerResults, TrackingSequences


@dataclass(frozen=True)
class TrackerProfile:
    """The character of one simulated tracker. Lengths are in units of the box size.

    Attributes:
        noise: Standard deviation of the per-frame jitter of the centre and of the log-size.
        drift: Standard deviation of the per-frame increments of a slowly drifting centre offset
            (AR(1) with coefficient 0.99).
        scale_error: Standard deviation of the per-frame increments of a slowly varying log-scale
            error (AR(1) with coefficient 0.98).
        jump_rate: Probability per frame of jumping to the distractor.
        jump_duration: Mean number of frames the distractor is followed (geometric).
        loss_rate: Probability per frame of starting to report nothing (NaN boxes).
        loss_duration: Mean number of frames without a box (geometric).
    """

    noise: float = 0.03
    drift: float = 0.0
    scale_error: float = 0.0
    jump_rate: float = 0.0
    jump_duration: float = 30.0
    loss_rate: float = 0.0
    loss_duration: float = 10.0


def default_profiles(num_trackers: int) -> list[TrackerProfile]:
    """Profiles from good (index 0) to bad (index K - 1); every third tracker loses frames.

    The quality q = k / (K - 1) scales every kind of error: jitter 0.02 → 0.10, drift 0.001 →
    0.02, scale error 0.005 → 0.03, jump rate 0.001 → 0.01 per frame (quadratic in q, so the
    good trackers rarely jump).
    """
    qualities = np.linspace(0.0, 1.0, num_trackers) if num_trackers > 1 else np.zeros(1)
    return [
        TrackerProfile(
            noise=0.02 + 0.08 * q,
            drift=0.001 + 0.019 * q,
            scale_error=0.005 + 0.025 * q,
            jump_rate=0.001 + 0.009 * q**2,
            loss_rate=0.01 if k % 3 == 2 else 0.0,
        )
        for k, q in enumerate(qualities)
    ]


def _ar1(noise: np.ndarray, rho: float) -> np.ndarray:
    """AR(1) process along axis 0: ``out[t] = rho * out[t-1] + noise[t]``, ``out[0] = noise[0]``."""
    out = np.empty_like(noise)
    out[0] = noise[0]
    for t in range(1, noise.shape[0]):
        out[t] = rho * out[t - 1] + noise[t]
    return out


def _reflect(x: np.ndarray, low: np.ndarray | float, high: np.ndarray | float) -> np.ndarray:
    """Fold ``x`` into ``[low, high]`` by reflecting at the bounds (a bouncing motion)."""
    span = np.maximum(np.asarray(high) - np.asarray(low), 1e-9)
    y = np.mod(x - low, 2 * span)
    return np.where(y > span, 2 * span - y, y) + low


def _episodes(
    rng: np.random.Generator, length: int, rates: np.ndarray, durations: np.ndarray
) -> np.ndarray:
    """Bool (T, K): True inside episodes starting with probability ``rates[k]`` per frame."""
    starts = rng.random((length, len(rates))) < rates
    starts[0] = False
    t, k = np.nonzero(starts)
    lengths = rng.geometric(1.0 / np.maximum(durations[k], 1.0))
    diff = np.zeros((length + 1, len(rates)), dtype=np.int64)
    np.add.at(diff, (t, k), 1)
    np.add.at(diff, (np.minimum(t + lengths, length), k), -1)
    return np.cumsum(diff[:-1], axis=0) > 0


def _smooth_track(
    rng: np.random.Generator, length: int, image_size: tuple[int, int], size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centre (T, 2) and size (T, 2) of a smooth box track inside the image."""
    image = np.asarray(image_size, dtype=np.float64)
    aspect = np.exp(rng.normal(0.0, 0.3))
    size0 = size * np.array([np.sqrt(aspect), 1.0 / np.sqrt(aspect)])
    log_scale = _reflect(np.cumsum(_ar1(rng.normal(0.0, 0.004, length), 0.9)), -0.7, 0.7)
    sizes = size0 * np.exp(log_scale)[:, None]
    velocity = _ar1(rng.normal(0.0, 0.3, (length, 2)), 0.95)
    centre0 = rng.uniform(sizes[0] / 2, image - sizes[0] / 2)
    centre = _reflect(centre0 + np.cumsum(velocity, axis=0), sizes / 2, image - sizes / 2)
    return centre, sizes


def _simulate_trackers(
    rng: np.random.Generator,
    target: tuple[np.ndarray, np.ndarray],
    distractor: tuple[np.ndarray, np.ndarray],
    profiles: Sequence[TrackerProfile],
) -> np.ndarray:
    """Boxes (T, K, 4) of the trackers, NaN where lost."""
    (centre, size), (d_centre, d_size) = target, distractor
    length, k = centre.shape[0], len(profiles)

    def column(name: str) -> np.ndarray:
        return np.array([getattr(p, name) for p in profiles])

    follow = _episodes(rng, length, column("jump_rate"), column("jump_duration"))[..., None]
    lost = _episodes(rng, length, column("loss_rate"), column("loss_duration"))
    base_centre = np.where(follow, d_centre[:, None], centre[:, None])
    base_size = np.where(follow, d_size[:, None], size[:, None])
    noise = column("noise")[:, None]
    drift = _ar1(rng.normal(0.0, 1.0, (length, k, 2)) * column("drift")[:, None], 0.99)
    scale = _ar1(rng.normal(0.0, 1.0, (length, k)) * column("scale_error"), 0.98)
    jitter = rng.normal(0.0, 1.0, (2, length, k, 2)) * noise
    out_size = base_size * np.exp(scale[..., None] + jitter[1])
    out_centre = base_centre + (drift + jitter[0]) * base_size
    boxes = np.concatenate([out_centre - out_size / 2, out_size], axis=-1)
    boxes[0] = np.concatenate([centre[0] - size[0] / 2, size[0]])
    boxes[lost] = np.nan
    return boxes


def simulate_tracking(
    num_sequences: int = 20,
    length: int | Sequence[int] = 300,
    num_trackers: int = 8,
    *,
    profiles: Sequence[TrackerProfile] | None = None,
    image_size: tuple[int, int] = (640, 480),
    gt_missing_rate: float = 0.0,
    seed: int | np.random.Generator = 0,
) -> TrackingSequences:
    """Simulate sequences of K trackers following a target, in the reader's format.

    Args:
        num_sequences: Number of sequences, named ``synth_000``, ``synth_001``, ...
        length: Frames per sequence: one number for all, or one per sequence.
        num_trackers: K, used when ``profiles`` is None (then :func:`default_profiles`).
        profiles: One :class:`TrackerProfile` per tracker; trackers are named ``sim00``, ...
        image_size: Image ``(width, height)`` in pixels; the target stays inside it.
        gt_missing_rate: Probability per frame of an episode (mean 10 frames) with no ground
            truth (NaN rows, as the out-of-view frames of UAV123).
        seed: Seed or generator; the same seed gives the same data.

    Returns:
        A :class:`~lightning_energy.datasets.otb.TrackingSequences` with boxes (T, K, 4) and
        ground truth (T, 4) per sequence, float64, NaN where missing.

    Example:
        >>> data = simulate_tracking(2, 50, 4, seed=0)
        >>> data["synth_000"].boxes.shape
        (50, 4, 4)
    """
    rng = np.random.default_rng(seed)
    profiles = list(profiles) if profiles is not None else default_profiles(num_trackers)
    lengths = [length] * num_sequences if isinstance(length, int) else list(length)
    if len(lengths) != num_sequences or min(lengths, default=1) < 1:
        raise ValueError(f"Expected {num_sequences} positive lengths, got {length}.")
    data = TrackingSequences([f"sim{k:02d}" for k in range(len(profiles))])
    for i, frames in enumerate(lengths):
        size = rng.uniform(0.08, 0.25) * min(image_size)
        target = _smooth_track(rng, frames, image_size, size)
        distractor = _smooth_track(rng, frames, image_size, size * rng.uniform(0.7, 1.3))
        boxes = _simulate_trackers(rng, target, distractor, profiles)
        gt = np.concatenate([target[0] - target[1] / 2, target[1]], axis=-1)
        absent = _episodes(rng, frames, np.array([gt_missing_rate]), np.array([10.0]))[:, 0]
        gt[absent] = np.nan
        data.add(TrackerResults(f"synth_{i:03d}", boxes, gt))
    return data
