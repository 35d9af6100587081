"""OTB tracking metrics against a per-frame NumPy loop written after the OTB toolkit."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from lightning_energy.errors import ShapeError
from lightning_energy.metrics import (
    MeanIoU,
    PrecisionAtPixels,
    SuccessAUC,
    mean_iou,
    precision_at_pixels,
    success_auc,
)
from lightning_energy.metrics.functional import box_iou
from lightning_energy.metrics.sequences import SEQUENCE_METRICS, mean_scores, sequence_scores

NAN = float("nan")
THRESHOLDS = [k / 20 for k in range(21)]  # MATLAB 0:0.05:1


# ----------------------------------------------------------------------------- reference


def otb_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """OTB toolkit ``calcRectInt`` for one pair of rows, with its -1 / +1 pixel offsets."""
    right_a, top_a = a[0] + a[2] - 1, a[1] + a[3] - 1
    right_b, top_b = b[0] + b[2] - 1, b[1] + b[3] - 1
    iw = max(0.0, min(right_a, right_b) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(top_a, top_b) - max(a[1], b[1]) + 1)
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def otb_center_error(a: np.ndarray, b: np.ndarray) -> float:
    """OTB toolkit centre error, centres at x + (w - 1) / 2."""
    ca = np.array([a[0] + (a[2] - 1) / 2, a[1] + (a[3] - 1) / 2])
    cb = np.array([b[0] + (b[2] - 1) / 2, b[1] + (b[3] - 1) / 2])
    return float(np.sqrt(np.sum((ca - cb) ** 2)))


def reference_frames(pred: np.ndarray, target: np.ndarray, valid: np.ndarray, skip_first: bool):
    """Per sequence: lists of (iou, centre error) of the scored frames."""
    sequences = []
    for p_seq, t_seq, v_seq in zip(pred, target, valid, strict=True):
        frames = []
        for t, (p, g, v) in enumerate(zip(p_seq, t_seq, v_seq, strict=True)):
            gt_ok = not np.isnan(g).any() and g[2] > 0 and g[3] > 0
            if not v or not gt_ok or (skip_first and t == 0):
                continue
            if np.isnan(p).any():
                frames.append((0.0, math.inf))
            else:
                frames.append((otb_overlap(p, g), otb_center_error(p, g)))
        sequences.append(frames)
    return sequences


def reference_metric(sequences, score: Callable[[float, float], float], average: str) -> float:
    if average == "frame":
        return float(np.mean([score(iou, err) for frames in sequences for iou, err in frames]))
    means = [np.mean([score(i, e) for i, e in frames]) for frames in sequences if frames]
    return float(np.mean(means))


def ref_success(iou: float, _: float) -> float:
    return float(np.mean([iou > thr for thr in THRESHOLDS]))


def ref_iou(iou: float, _: float) -> float:
    return iou


def ref_precision(threshold: float) -> Callable[[float, float], float]:
    return lambda _, err: float(err <= threshold)


def make_tracks(seed: int, batch: int = 6, frames: int = 30):
    """Random tracks with NaN predictions, 0,0,0,0 / NaN / degenerate GT rows and padding."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (batch, frames, 2))
    wh = rng.uniform(5, 60, (batch, frames, 2))
    target = np.concatenate([xy, wh], -1)
    pred = target + rng.normal(0, 1, target.shape) * np.array([15, 15, 8, 8])
    pred[..., 2:] = np.abs(pred[..., 2:]) + 1
    pred[rng.random((batch, frames)) < 0.05] = NAN
    target[rng.random((batch, frames)) < 0.05] = 0.0
    target[rng.random((batch, frames)) < 0.03] = NAN
    target[0, 3, 2], target[1, 4, 3] = 0.0, -3.0
    valid = np.ones((batch, frames), dtype=bool)
    valid[2, frames // 2 :] = False  # a shorter, padded sequence
    valid[3] = False  # a sequence with nothing to score
    pred[2, frames // 2 :] = 1e6
    return pred, target, valid


CASES = [
    (success_auc, SuccessAUC, {}, ref_success),
    (mean_iou, MeanIoU, {}, ref_iou),
    (precision_at_pixels, PrecisionAtPixels, {"threshold": 20.0}, ref_precision(20.0)),
    (precision_at_pixels, PrecisionAtPixels, {"threshold": 7.5}, ref_precision(7.5)),
]
IDS = ["success", "iou", "precision20", "precision7.5"]


# ----------------------------------------------------------------------------- reference tests


@pytest.mark.parametrize(("fn", "cls", "kwargs", "score"), CASES, ids=IDS)
@pytest.mark.parametrize("average", ["sequence", "frame"])
@pytest.mark.parametrize("skip_first", [False, True])
def test_functional_matches_otb_loop(fn, cls, kwargs, score, average, skip_first) -> None:
    pred, target, valid = make_tracks(0)
    sequences = reference_frames(pred, target, valid, skip_first)
    expected = reference_metric(sequences, score, average)
    got = fn(
        torch.from_numpy(pred),
        torch.from_numpy(target),
        valid=torch.from_numpy(valid),
        average=average,
        skip_first=skip_first,
        **kwargs,
    )
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("fn", "cls", "kwargs", "score"), CASES, ids=IDS)
@pytest.mark.parametrize("average", ["sequence", "frame"])
def test_class_equals_functional_over_uneven_batches(fn, cls, kwargs, score, average) -> None:
    pred, target, valid = (torch.from_numpy(a) for a in make_tracks(1, batch=8))
    metric = cls(average=average, **kwargs)
    for start, stop in ((0, 3), (3, 4), (4, 8)):
        metric.update(pred[start:stop], target[start:stop], valid[start:stop])
    expected = fn(pred, target, valid=valid, average=average, **kwargs)
    assert metric.compute().item() == pytest.approx(expected.item(), rel=1e-12)
    metric.reset()
    batch_value = metric(pred[:2].float(), target[:2].float(), valid[:2])
    assert batch_value.item() == pytest.approx(
        fn(pred[:2], target[:2], valid=valid[:2], average=average, **kwargs).item(), rel=1e-6
    )


# ----------------------------------------------------------------------------- hand-computed


BOX = [0.0, 0.0, 10.0, 10.0]
PAIRS = [
    ([5.0, 0.0, 10.0, 10.0], 1 / 3),
    ([0.0, 0.0, 10.0, 5.0], 0.5),
    ([10.0, 0.0, 10.0, 10.0], 0.0),  # touching edges
    ([2.0, 2.0, 4.0, 4.0], 0.16),  # contained
    ([0.0, 0.0, 10.0, 10.0], 1.0),
]


@pytest.mark.parametrize(("box", "iou"), PAIRS)
def test_two_box_iou(box: list[float], iou: float) -> None:
    got = mean_iou(torch.tensor([box]), torch.tensor([BOX]))
    assert got.item() == pytest.approx(iou, abs=1e-12)
    assert otb_overlap(np.array(box), np.array(BOX)) == pytest.approx(iou, abs=1e-12)


def test_known_success_curve() -> None:
    # IoUs 1, 1/2, 1/3, 0: success rate 3/4 for t in 0..0.30 (7 thresholds), 2/4 for 0.35..0.45,
    # 1/4 for 0.50..0.95 (IoU 0.5 does not beat 0.5), 0 at 1.0.
    pred = torch.tensor([p for p, _ in (PAIRS[4], PAIRS[1], PAIRS[0], PAIRS[2])])
    target = torch.tensor([BOX] * 4)
    expected = (7 * 0.75 + 3 * 0.5 + 10 * 0.25 + 0.0) / 21
    assert success_auc(pred, target).item() == pytest.approx(expected, abs=1e-12)


def test_success_is_strict_at_threshold() -> None:
    one_frame = success_auc(torch.tensor([PAIRS[1][0]]), torch.tensor([BOX]))
    assert one_frame.item() == pytest.approx(10 / 21, abs=1e-12)  # 0, 0.05, ..., 0.45
    perfect = success_auc(torch.tensor([BOX]), torch.tensor([BOX]))
    assert perfect.item() == pytest.approx(20 / 21, abs=1e-12)  # IoU 1 never beats t = 1


def test_precision_is_inclusive_and_nan_prediction_fails() -> None:
    target = torch.tensor([BOX] * 4)
    pred = torch.tensor([[12.0, 16, 10, 10], [12.0, 16.5, 10, 10], [NAN, 0, 10, 10], BOX])
    assert precision_at_pixels(pred, target).item() == pytest.approx(0.5)
    assert mean_iou(pred[2:3], target[2:3]).item() == 0.0
    assert success_auc(pred[2:3], target[2:3]).item() == 0.0


def test_invalid_ground_truth_is_excluded() -> None:
    target = torch.tensor([BOX, [0.0, 0, 0, 0], [NAN] * 4, [1.0, 1, 0, 5], [1.0, 1, 5, -2]])
    pred = torch.tensor([BOX] * 5)
    assert mean_iou(pred, target).item() == 1.0
    assert precision_at_pixels(pred, target).item() == 1.0
    assert torch.isnan(mean_iou(pred[1:], target[1:]))


def test_sequence_versus_frame_average() -> None:
    target = torch.tensor([[BOX, BOX, BOX], [BOX, BOX, BOX]])
    pred = torch.tensor([[BOX, BOX, BOX], [PAIRS[2][0], BOX, BOX]])
    valid = torch.tensor([[True, False, False], [True, True, True]])
    assert mean_iou(pred, target, valid=valid).item() == pytest.approx((1 + 2 / 3) / 2)
    assert mean_iou(pred, target, valid=valid, average="frame").item() == pytest.approx(3 / 4)


def test_padding_equals_separate_sequences() -> None:
    pred, target, _ = (torch.from_numpy(a[:2]) for a in make_tracks(2, batch=4, frames=20))
    padded_pred, padded_target = pred.clone(), target.clone()
    padded_pred[1, 12:], padded_target[1, 12:] = 123.0, 7.0
    valid = torch.ones(2, 20, dtype=torch.bool)
    valid[1, 12:] = False
    separate = (success_auc(pred[0], target[0]) + success_auc(pred[1, :12], target[1, :12])) / 2
    got = success_auc(padded_pred, padded_target, valid=valid)
    assert got.item() == pytest.approx(separate.item(), rel=1e-12)


def test_skip_first_equals_slicing_and_two_dim_input() -> None:
    pred, target, _ = (torch.from_numpy(a) for a in make_tracks(3, batch=4))
    skipped = precision_at_pixels(pred, target, 10.0, skip_first=True)
    assert skipped.item() == pytest.approx(
        precision_at_pixels(pred[:, 1:], target[:, 1:], 10.0).item()
    )
    assert success_auc(pred[0], target[0]).item() == success_auc(pred[:1], target[:1]).item()


def test_compute_before_update_is_nan() -> None:
    with pytest.warns(UserWarning, match="before"):
        assert torch.isnan(SuccessAUC().compute())


# ----------------------------------------------------------------------------- errors


CALLS = [success_auc, mean_iou, precision_at_pixels, SuccessAUC().update, MeanIoU().update]


@pytest.mark.parametrize("call", CALLS)
def test_bad_box_shape(call) -> None:
    with pytest.raises(ShapeError) as info:
        call(torch.zeros(8, 10, 5), torch.zeros(8, 10, 5))
    assert str(info.value) == (
        "Expected `pred` of shape (B, T, 4) or (T, 4), got (8, 10, 5) (torch.float32)."
    )


@pytest.mark.parametrize("call", CALLS)
def test_mismatched_boxes_are_named(call) -> None:
    with pytest.raises(ShapeError, match=r"`pred` and `target`.*\(8, 10, 4\).*\(8, 11, 4\)"):
        call(torch.zeros(8, 10, 4), torch.zeros(8, 11, 4))


@pytest.mark.parametrize("valid", [torch.ones(8, 9, dtype=torch.bool), torch.ones(8, 10)])
def test_bad_valid_mask(valid: torch.Tensor) -> None:
    with pytest.raises(ShapeError, match=r"`valid` of shape \(8, 10\) and dtype torch.bool"):
        mean_iou(torch.zeros(8, 10, 4), torch.zeros(8, 10, 4), valid=valid)
    with pytest.raises(ShapeError, match="`valid`"):
        MeanIoU().update(torch.zeros(8, 10, 4), torch.zeros(8, 10, 4), valid)


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="`average`"):
        SuccessAUC(average="sequences")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`average`"):
        mean_iou(torch.zeros(2, 4), torch.zeros(2, 4), average="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`threshold`"):
        PrecisionAtPixels(threshold=-1.0)


def test_ground_truth_with_one_nan_coordinate_is_not_scored() -> None:
    """Faulty variant: only all-NaN ground-truth rows count as missing."""
    target = torch.tensor([BOX, [NAN, 0, 10, 10], [0, 0, 10, NAN]])
    pred = torch.tensor([BOX, [50.0, 50, 10, 10], [50.0, 50, 10, 10]])
    for fn in (mean_iou, success_auc, precision_at_pixels):
        assert fn(pred, target).item() == fn(pred[:1], target[:1]).item()
    metric = MeanIoU()
    metric.update(pred, target)
    assert metric.compute().item() == 1.0


@pytest.mark.parametrize(("fn", "cls"), [(success_auc, SuccessAUC), (mean_iou, MeanIoU),
                                         (precision_at_pixels, PrecisionAtPixels)])
def test_classes_honour_skip_first(fn, cls) -> None:
    """Faulty variant: the class drops `skip_first` (its functional twin keeps it)."""
    pred, target, _ = (torch.from_numpy(a) for a in make_tracks(3, batch=4))
    pred[:, 0] = target[:, 0] + 40.0  # frame 0 lost: skipping it changes every score
    metric = cls(skip_first=True)
    metric.update(pred, target)
    expected = fn(pred, target, skip_first=True)
    assert metric.compute().item() == pytest.approx(expected.item(), rel=1e-12)
    assert expected.item() != pytest.approx(fn(pred, target).item())


def test_sequence_scores_score_a_missing_prediction_zero_and_skip_a_missing_truth():
    """Faulty variant: prediction and truth swapped (then the frame without a prediction is not
    scored: 0.8 / 1 / 16/21), or a score filed under another name."""
    target = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [NAN] * 4])
    pred = torch.tensor([[0.0, 0.0, 10.0, 8.0], [NAN] * 4, [NAN] * 4])  # IoU 0.8, then no box
    scores = sequence_scores(pred, target)
    assert list(scores) == list(SEQUENCE_METRICS)
    assert scores == pytest.approx({"success_auc": 8 / 21, "precision_20px": 0.5,
                                    "mean_iou": 0.4}, abs=1e-12)


def test_mean_scores_weigh_every_sequence_once():
    """Faulty variant: a sum instead of a mean, or one sequence dropped."""
    rows = [{"success_auc": 0.2, "precision_20px": 0.4, "mean_iou": 0.1, "frames": 100.0},
            {"success_auc": 0.6, "precision_20px": 1.0, "mean_iou": 0.5, "frames": 3.0}]
    assert mean_scores(iter(rows)) == pytest.approx(
        {"success_auc": 0.4, "precision_20px": 0.7, "mean_iou": 0.3}, abs=1e-12)
    with pytest.raises(ValueError, match="at least one sequence"):
        mean_scores([])


def test_box_iou_takes_batches_and_names_bad_arguments():
    """Faulty variants: the box check on ``shape[-2:]`` (batches refused), or a message naming
    another argument."""
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([[1.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(box_iou(pred, target),
                               torch.tensor([1 / 3, 1.0], dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"^Expected `pred` of shape \(\.\.\., 4\)"):
        box_iou(torch.zeros(2, 5), torch.zeros(2, 5))
    with pytest.raises(ShapeError, match=r"^Expected `pred` and `target` to have the same shape"):
        box_iou(torch.zeros(2, 4), torch.zeros(3, 4))


def test_success_thresholds_are_compared_in_the_iou_dtype():
    """Faulty variant: thresholds built in float32 (0.35 rounds down there, so an IoU of exactly
    7/20 would count as above it)."""
    pred = torch.tensor([[0.0, 0.0, 7.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 0.0, 20.0, 1.0]], dtype=torch.float64)
    assert float(box_iou(pred, target)[0]) == 0.35
    assert float(success_auc(pred, target)) == pytest.approx(7 / 21, abs=1e-15)


def test_iou_of_sub_pixel_and_empty_boxes():
    """Faulty variants: sizes clamped at 1 instead of 0 or a union required above 1 (sub-pixel
    boxes then score 0.5 or 0), or an empty union let through (0 / 0 = NaN instead of 0)."""
    small = torch.tensor([0.0, 0.0, 0.5, 0.5], dtype=torch.float64)
    assert float(box_iou(small, small)) == 1.0
    empty = torch.zeros(4, dtype=torch.float64)
    assert float(box_iou(empty, empty)) == 0.0
    flat = torch.tensor([0.0, 0.0, -3.0, 2.0], dtype=torch.float64)  # negative width: empty
    assert float(box_iou(flat, torch.tensor([0.0, 0.0, 1.0, 2.0], dtype=torch.float64))) == 0.0


def test_precision_accepts_thresholds_below_one_pixel():
    """Faulty variants: ``threshold > 0`` or ``>= 1`` required (0 and 0.5 px are valid)."""
    target = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]], dtype=torch.float64)
    pred = target + torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.4, 0.0, 0.0, 0.0]],
                                 dtype=torch.float64)
    assert float(precision_at_pixels(pred, target, threshold=0.0)) == 0.5
    assert float(precision_at_pixels(pred, target, threshold=0.5)) == 1.0
    assert float(PrecisionAtPixels(threshold=0.0)(pred[None], target[None])) == 0.5


def test_truth_boxes_count_when_their_sides_are_positive_even_below_a_pixel():
    """Faulty variants: a side required above 1 px, or a zero height let through as valid."""
    target = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 5.0, 0.0], [0.0, 0.0, 0.0, 5.0]],
                          dtype=torch.float64)
    pred = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 5.0, 5.0]],
                        dtype=torch.float64)
    assert float(mean_iou(pred, target)) == 1.0  # only the sub-pixel frame is scored
    with pytest.raises(ShapeError, match=r"^Expected `target` of shape \(B, T, 4\)"):
        mean_iou(torch.zeros(3, 4), torch.zeros(3, 5))
