"""Single-object tracking metrics following the OTB one-pass evaluation (OPE) protocol.

Boxes are x, y, w, h (top-left corner, pixels). All three metrics reduce a per-frame score over
the valid frames of each sequence; a ground-truth box is valid when finite with w > 0 and h > 0.
The states are float64 sums and int64 counts for both averaging modes, so DDP reduction is exact
and ``average`` only changes what ``compute()`` divides.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_energy.metrics._boxes import (
    _box_iou,
    _frame_mask,
    _precision_scores,
    _sequence_compute,
    _sequence_update,
    _success_scores,
)
from lightning_energy.metrics._checks import _check_average, _check_boxes, _check_threshold
from lightning_energy.metrics.functional import Average


class _SequenceAveragedMetric(Metric):
    """Base: per-frame scores averaged per sequence (OTB) or over frames. Subclasses score frames.

    As input to ``update`` / ``forward``:

        - ``pred``: predicted boxes of shape (B, T, 4) or (T, 4), x, y, w, h.
        - ``target``: ground-truth boxes, same shape.
        - ``valid`` (optional): bool mask of shape (B, T) or (T,), e.g. for padded sequences.

    Each row of a (B, T, 4) batch is one whole sequence: a sequence must not be split across
    ``update`` calls when ``average="sequence"``.
    """

    seq_sum: Tensor
    num_sequences: Tensor
    frame_sum: Tensor
    num_frames: Tensor
    full_state_update: bool = False
    is_differentiable: bool = False
    higher_is_better: bool = True

    def __init__(self, average: Average = "sequence", skip_first: bool = False) -> None:
        super().__init__()
        _check_average(average)
        self.average = average
        self.skip_first = skip_first
        for name in ("seq_sum", "frame_sum"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("num_sequences", "num_frames"):
            self.add_state(name, torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    @abstractmethod
    def _frame_scores(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per-frame scores of shape (B, T) for float64 boxes of shape (B, T, 4)."""

    def update(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> None:
        """Accumulate the scores of whole sequences of boxes (B, T, 4) or (T, 4)."""
        pred, target, valid = _check_boxes(pred, target, valid)
        mask = _frame_mask(target, valid, self.skip_first)
        seq_sum, num_sequences, frame_sum, num_frames = _sequence_update(
            self._frame_scores(pred, target), mask
        )
        self.seq_sum += seq_sum
        self.num_sequences += num_sequences
        self.frame_sum += frame_sum
        self.num_frames += num_frames

    def compute(self) -> Tensor:
        """The averaged score, a float64 scalar (NaN before any valid frame)."""
        return _sequence_compute(
            self.seq_sum, self.num_sequences, self.frame_sum, self.num_frames, self.average
        )


class SuccessAUC(_SequenceAveragedMetric):
    """Area under the OTB success plot.

    A frame succeeds at threshold t when IoU > t (strictly, as the OTB toolkit); the AUC is the
    mean success rate over the 21 thresholds 0, 0.05, …, 1 (maximum 20/21). IoU uses continuous
    areas w * h, identical to the toolkit's ``calcRectInt``. Invalid ground truth (non-finite,
    w <= 0 or h <= 0) is excluded; a predicted box with NaN / inf scores IoU 0 (the toolkit would
    substitute the previous box, which is the data loader's business). Inputs as in
    :func:`lightning_energy.metrics.functional.success_auc`, its functional twin.

    Args:
        average: ``"sequence"`` (default, as OTB reports: AUC per sequence, each sequence weighted
            equally) or ``"frame"`` (all valid frames pooled).
        skip_first: Exclude frame 0, the initialisation frame. Default False: OTB's OPE scores
            every frame, the first included.

    Raises:
        ValueError: If ``average`` is not ``"sequence"`` or ``"frame"``.

    Example:
        >>> import torch
        >>> metric = SuccessAUC()
        >>> box = torch.tensor([0.0, 0.0, 10.0, 10.0])
        >>> metric.update(box.repeat(1, 3, 1), box.repeat(1, 3, 1))  # 3 perfect frames
        >>> metric.update(box[None] + 100.0, box[None])  # a one-frame sequence, lost
        >>> metric.compute()  # (20/21 + 0) / 2
        tensor(0.4762, dtype=torch.float64)
    """

    def _frame_scores(self, pred: Tensor, target: Tensor) -> Tensor:
        return _success_scores(pred, target)


class PrecisionAtPixels(_SequenceAveragedMetric):
    """OTB precision: fraction of valid frames with centre-location error <= ``threshold``.

    Centres are x + w/2, y + h/2 (distances equal the toolkit's x + (w - 1)/2 convention); a
    predicted box with NaN / inf has error infinity. Validity and averaging as in
    :class:`SuccessAUC`. Functional twin:
    :func:`lightning_energy.metrics.functional.precision_at_pixels`.

    Args:
        threshold: Centre-error threshold in pixels (OTB reports 20).
        average: ``"sequence"`` (default) or ``"frame"``.
        skip_first: Exclude frame 0 (default False, as OTB's OPE).

    Raises:
        ValueError: If ``threshold`` is negative or ``average`` is unknown.

    Example:
        >>> import torch
        >>> metric = PrecisionAtPixels(threshold=20.0)
        >>> target = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0]])
        >>> pred = torch.tensor([[12.0, 16, 10, 10], [25, 0, 10, 10], [0, 0, 10, 10]])
        >>> metric(pred, target)  # errors 20 and 25; the 0,0,0,0 frame is not scored
        tensor(0.5000, dtype=torch.float64)
    """

    def __init__(
        self, threshold: float = 20.0, average: Average = "sequence", skip_first: bool = False
    ) -> None:
        super().__init__(average=average, skip_first=skip_first)
        _check_threshold(threshold)
        self.threshold = threshold

    def _frame_scores(self, pred: Tensor, target: Tensor) -> Tensor:
        return _precision_scores(pred, target, self.threshold)


class MeanIoU(_SequenceAveragedMetric):
    """Mean IoU of axis-aligned x, y, w, h boxes over valid frames.

    IoU, validity and averaging as in :class:`SuccessAUC`. Functional twin:
    :func:`lightning_energy.metrics.functional.mean_iou`.

    Args:
        average: ``"sequence"`` (default) or ``"frame"``.
        skip_first: Exclude frame 0 (default False, as OTB's OPE).

    Raises:
        ValueError: If ``average`` is unknown.

    Example:
        >>> import torch
        >>> metric = MeanIoU(average="frame")
        >>> target = torch.tensor([[[0.0, 0, 10, 10], [0, 0, 10, 10]]])
        >>> metric.update(torch.tensor([[[5.0, 0, 10, 10], [0, 0, 10, 5]]]), target)
        >>> metric.compute()  # (1/3 + 1/2) / 2
        tensor(0.4167, dtype=torch.float64)
    """

    def _frame_scores(self, pred: Tensor, target: Tensor) -> Tensor:
        return _box_iou(pred, target)
