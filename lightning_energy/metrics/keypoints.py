"""2D keypoint metrics: pixel error and the left/right swap rate of a detector."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_energy.datasets.pose_batch import LEFT_RIGHT_PAIRS
from lightning_energy.metrics._keypoints import (
    _check_pairs,
    _keypoint_error_update,
    _swap_update,
)


class KeypointError(Metric):
    """Mean Euclidean 2D keypoint error over visible joints, in pixels.

    The metric accumulates the float64 sum of joint errors and the int64 number of visible
    joints, so ``compute()`` under DDP equals the single-process value over all data.

    As input to ``update`` / ``forward``:

        - ``pred``: predicted keypoints of shape (B, J, 2), (u, v) pixels.
        - ``target``: ground-truth keypoints of shape (B, J, 2); entries of invisible joints are
          ignored (they may be NaN).
        - ``visible`` (optional): bool of shape (B, J); ``False`` joints are not counted.

    ``compute()`` returns a float64 scalar (NaN before any joint was counted). The functional twin
    is :func:`lightning_energy.metrics.functional.keypoint_error`.

    Example:
        >>> import torch
        >>> metric = KeypointError()
        >>> target = torch.zeros(1, 2, 2)
        >>> metric.update(torch.tensor([[[3.0, 4.0], [1.0, 0.0]]]), target)
        >>> metric.update(torch.tensor([[[0.0, 2.0], [9.0, 9.0]]]), target,
        ...               torch.tensor([[True, False]]))
        >>> metric.compute()  # (5 + 1 + 2) / 3
        tensor(2.6667, dtype=torch.float64)
    """

    error_sum: Tensor
    total: Tensor
    full_state_update: bool = False
    is_differentiable: bool = True
    higher_is_better: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, visible: Tensor | None = None) -> None:
        """Accumulate the joint errors of a batch of shape (B, J, 2)."""
        error_sum, total = _keypoint_error_update(pred, target, visible)
        self.error_sum += error_sum
        self.total += total

    def compute(self) -> Tensor:
        """Mean joint error over everything seen, float64 scalar in pixels."""
        return self.error_sum / self.total


class LeftRightSwapRate(Metric):
    """Fraction of left/right joints whose prediction is closer to the mirror joint's truth.

    For every pair (right, left), each of the two joints is *swapped* when its prediction is
    strictly closer to the ground truth of the other joint of the pair than to its own; joints are
    counted when both joints of their pair are visible. 0 for perfect predictions, 1 when every
    pair is exchanged (a mirrored detection). The states are int64 counts, exact under DDP.

    As input to ``update`` / ``forward``:

        - ``pred``: predicted keypoints of shape (B, J, 2), pixels.
        - ``target``: ground-truth keypoints of shape (B, J, 2).
        - ``visible`` (optional): bool of shape (B, J).

    ``compute()`` returns a float64 scalar (NaN before any joint was counted). The functional twin
    is :func:`lightning_energy.metrics.functional.left_right_swap_rate`.

    Args:
        pairs: (right, left) joint index pairs; default the Human3.6M 17-joint pairs
            :data:`lightning_energy.datasets.pose_batch.LEFT_RIGHT_PAIRS`.

    Raises:
        ValueError: If ``pairs`` is empty or not a sequence of index pairs.

    Example:
        >>> import torch
        >>> metric = LeftRightSwapRate(pairs=((0, 1),))
        >>> target = torch.tensor([[[0.0, 0.0], [10.0, 0.0]]])
        >>> metric.update(torch.tensor([[[9.0, 0.0], [8.0, 0.0]]]), target)  # joint 0 swapped
        >>> metric.compute()
        tensor(0.5000, dtype=torch.float64)
    """

    swapped: Tensor
    total: Tensor
    full_state_update: bool = False
    is_differentiable: bool = False
    higher_is_better: bool = False

    def __init__(self, pairs: Sequence[tuple[int, int]] = LEFT_RIGHT_PAIRS) -> None:
        super().__init__()
        self.pairs = _check_pairs(pairs)  # checked against J at each update
        self.add_state("swapped", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, visible: Tensor | None = None) -> None:
        """Accumulate the swapped and counted paired joints of a batch of shape (B, J, 2)."""
        swapped, total = _swap_update(pred, target, visible, self.pairs)
        self.swapped += swapped
        self.total += total

    def compute(self) -> Tensor:
        """Swapped fraction of the paired joints seen, float64 scalar."""
        return self.swapped.double() / self.total
