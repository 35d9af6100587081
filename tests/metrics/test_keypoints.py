"""KeypointError / LeftRightSwapRate (and twins) against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_energy.datasets.pose_batch import LEFT_RIGHT_PAIRS
from lightning_energy.errors import ShapeError
from lightning_energy.metrics import (
    KeypointError,
    LeftRightSwapRate,
    keypoint_error,
    left_right_swap_rate,
)

B, J = 16, 17


def make_keypoints(seed: int, noise: float = 15.0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = 256 * torch.rand(B, J, 2, generator=gen)
    pred = target + noise * torch.randn(B, J, 2, generator=gen)
    return pred, target


def make_visible(seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(B, J, generator=gen) > 0.2


def ref_error(pred: np.ndarray, target: np.ndarray, visible: np.ndarray) -> float:
    return float(np.mean([np.linalg.norm(pred[b, j] - target[b, j])
                          for b in range(len(pred)) for j in range(J) if visible[b, j]]))


def ref_swap_rate(pred: np.ndarray, target: np.ndarray, visible: np.ndarray) -> float:
    swapped = []
    for b in range(len(pred)):
        for right, left in LEFT_RIGHT_PAIRS:
            if not (visible[b, right] and visible[b, left]):
                continue
            for own, mirror in ((right, left), (left, right)):
                to_own = np.linalg.norm(pred[b, own] - target[b, own])
                to_mirror = np.linalg.norm(pred[b, own] - target[b, mirror])
                swapped.append(to_mirror < to_own)
    return float(np.mean(swapped))


@pytest.mark.parametrize("masked", [False, True])
def test_keypoint_error_matches_numpy(masked: bool) -> None:
    """Catches a mean over all joints instead of visible ones, or a squared/L1 error."""
    pred, target = make_keypoints(0)
    visible = make_visible(1) if masked else torch.ones(B, J, dtype=torch.bool)
    target[~visible] = float("nan")  # invisible ground truth may be missing
    expected = ref_error(pred.numpy(), target.numpy(), visible.numpy())
    got = keypoint_error(pred, target, visible=visible)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(expected, rel=1e-6)
    metric = KeypointError()
    metric.update(pred[:5], target[:5], visible[:5])
    metric.update(pred[5:], target[5:], visible[5:])
    assert metric.compute().item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("noise", "masked"), [(15.0, False), (60.0, True), (120.0, True)])
def test_swap_rate_matches_numpy(noise: float, masked: bool) -> None:
    """Catches a swap counted per pair instead of per joint, or invisible mirrors counted."""
    pred, target = make_keypoints(2, noise)
    visible = make_visible(3) if masked else torch.ones(B, J, dtype=torch.bool)
    expected = ref_swap_rate(pred.numpy(), target.numpy(), visible.numpy())
    assert 0 < expected < 1
    got = left_right_swap_rate(pred, target, visible=visible)
    assert got.item() == pytest.approx(expected, abs=1e-12)
    metric = LeftRightSwapRate()
    metric.update(pred[:7], target[:7], visible[:7])
    metric.update(pred[7:], target[7:], visible[7:])
    assert metric.compute().item() == pytest.approx(expected, abs=1e-12)


def test_swap_rate_is_zero_for_perfect_and_one_for_mirrored_predictions() -> None:
    """Catches a non-strict comparison or a rate that counts the unpaired joints (spine, head)."""
    _, target = make_keypoints(4)
    assert left_right_swap_rate(target, target).item() == 0.0
    mirrored = target.clone()
    for right, left in LEFT_RIGHT_PAIRS:
        mirrored[:, [right, left]] = target[:, [left, right]]
    assert left_right_swap_rate(mirrored, target).item() == 1.0
    noisy = mirrored + 0.5 * torch.randn(mirrored.shape)  # still closer to the mirror joint
    assert left_right_swap_rate(noisy, target).item() == 1.0
    metric = LeftRightSwapRate()
    metric.update(mirrored, target)
    assert metric.compute().item() == 1.0


def test_one_swapped_pair_in_one_sample() -> None:
    """Catches a rate normalised by samples or pairs instead of paired joints."""
    _, target = make_keypoints(5)
    pred = target.clone()
    pred[0, [1, 4]] = target[0, [4, 1]]  # right/left hip exchanged in sample 0
    assert left_right_swap_rate(pred, target).item() == pytest.approx(2 / (B * 12))


@pytest.mark.parametrize(
    ("pred", "target", "visible", "match"),
    [
        (torch.zeros(2, 17, 3), torch.zeros(2, 17, 3), None, r"`pred` of shape \(B, J, 2\)"),
        (torch.zeros(2, 17, 2), torch.zeros(3, 17, 2), None, "same shape"),
        (torch.zeros(2, 17, 2), torch.zeros(2, 17, 2), torch.ones(2, 17), "`visible` of shape"),
        (torch.zeros(2, 10, 2), torch.zeros(2, 10, 2), None, r"`pairs` to index the J = 10"),
    ],
)
def test_class_and_twin_raise_the_same_error(
    pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor | None, match: str
) -> None:
    """Catches a twin that validates differently from its class (or not at all)."""
    with pytest.raises(ShapeError, match=match):
        left_right_swap_rate(pred, target, visible=visible)
    with pytest.raises(ShapeError, match=match):
        LeftRightSwapRate().update(pred, target, visible)
    if "pairs" not in match:
        with pytest.raises(ShapeError, match=match):
            keypoint_error(pred, target, visible=visible)
        with pytest.raises(ShapeError, match=match):
            KeypointError().update(pred, target, visible)


@pytest.mark.parametrize("pairs", [(), ((1,),), ((-1, 2),), "ab"])
def test_bad_pairs_raise_at_construction(pairs: object) -> None:
    """Catches malformed pairs only failing (or silently wrapping around) at update time."""
    with pytest.raises(ValueError, match="pairs"):
        LeftRightSwapRate(pairs=pairs)  # type: ignore[arg-type]


def test_pairs_must_index_the_joints_of_pred():
    """Faulty variant: ``index.max() > joints`` (a pair naming joint J itself then reaches the
    gather and fails there with an IndexError instead of the named ShapeError)."""
    pred = torch.zeros(2, 5, 2)
    with pytest.raises(ShapeError, match="J = 5"):
        left_right_swap_rate(pred, pred, pairs=[(0, 5)])
    spread = torch.arange(5.0)[:, None].expand(5, 2)
    assert float(left_right_swap_rate(pred + spread, pred + spread, pairs=[(0, 4)])) == 0.0


@pytest.mark.parametrize("call", [keypoint_error, left_right_swap_rate])
def test_shape_errors_name_the_argument_and_the_expected_shape(call) -> None:
    """Faulty variant: a message that names another argument or another layout."""
    with pytest.raises(ShapeError, match=r"^Expected `target` of shape \(B, J, 2\), got \(2, 5, 3"):
        call(torch.zeros(2, 5, 2), torch.zeros(2, 5, 3))
    with pytest.raises(ShapeError, match=r"^Expected `pred` and `target` to have the same shape"):
        call(torch.zeros(2, 5, 2), torch.zeros(3, 5, 2))


def test_a_prediction_midway_between_the_pair_is_not_swapped() -> None:
    """Faulty variant: ``to_mirror <= to_own`` (a tie counted as a swap; swaps are strict)."""
    target = torch.tensor([[[-10.0, 0.0], [10.0, 0.0]]])
    midway = torch.zeros(1, 2, 2)
    assert float(left_right_swap_rate(midway, target, pairs=[(0, 1)])) == 0.0
    assert float(left_right_swap_rate(target.flip(1), target, pairs=[(0, 1)])) == 1.0
