"""3D human pose metrics: MPJPE (Human3.6M protocol #1) and PA-MPJPE (protocol #2)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_energy.metrics._checks import _check_root
from lightning_energy.metrics.functional import _mpjpe_update, _pa_mpjpe_update


class MPJPE(Metric):
    """Mean per-joint position error after root alignment (Human3.6M protocol #1), in mm.

    Both poses are made root-relative by subtracting joint ``root``; the Euclidean joint error is
    averaged over all joints and samples seen (the root, with error 0, is counted). The metric
    accumulates the float64 sum of joint errors and the joint count, so ``compute()`` under DDP
    equals the single-process value over all data.

    As input to ``update`` / ``forward``:

        - ``pred``: predicted poses of shape (B, J, 3), in mm.
        - ``target``: ground-truth poses of shape (B, J, 3), in mm.
        - ``joint_mask`` (optional): bool of shape (B, J) or (J,); ``False`` joints are excluded
          from the mean (the root is still used for alignment).

    ``compute()`` returns a float64 scalar (NaN before any joint was counted). The functional twin
    is :func:`lightning_energy.metrics.functional.mpjpe`.

    Args:
        root: Index of the root joint (0 = pelvis in the Human3.6M 17-joint layout); ``None``
            disables root alignment.

    Raises:
        ValueError: If ``root`` is neither an int nor None.

    Example:
        >>> import torch
        >>> metric = MPJPE()
        >>> target = torch.zeros(1, 2, 3)
        >>> metric.update(torch.tensor([[[10.0, 0.0, 0.0], [10.0, 3.0, 4.0]]]), target)
        >>> metric.update(torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]), target)
        >>> metric.compute()  # (0 + 5 + 0 + 1) / 4
        tensor(1.5000, dtype=torch.float64)
    """

    error_sum: Tensor
    total: Tensor
    full_state_update: bool = False
    is_differentiable: bool = True
    higher_is_better: bool = False

    def __init__(self, root: int | None = 0) -> None:
        super().__init__()
        _check_root(root)
        self.root = root
        self.add_state("error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, joint_mask: Tensor | None = None) -> None:
        """Accumulate the joint errors of a batch of shape (B, J, 3)."""
        error_sum, total = _mpjpe_update(pred, target, self.root, joint_mask)
        self.error_sum += error_sum
        self.total += total

    def compute(self) -> Tensor:
        """Mean joint error over everything seen, float64 scalar in the input's unit."""
        return self.error_sum / self.total


class PAMPJPE(Metric):
    """Procrustes-aligned mean per-joint position error (Human3.6M protocol #2), in mm.

    Each predicted pose is aligned to its target by the best similarity transform (rotation with
    reflection correction, uniform scale, translation; one batched float64 SVD), then the joint
    error is averaged over joints and samples. The float64 error sum and joint count are the
    states, so DDP reduction is exact.

    As input to ``update`` / ``forward``:

        - ``pred``: predicted poses of shape (B, J, 3), in mm.
        - ``target``: ground-truth poses of shape (B, J, 3), in mm.
        - ``joint_mask`` (optional): bool of shape (B, J) or (J,); ``False`` joints take part in
          neither the alignment nor the mean.

    ``compute()`` returns a float64 scalar (NaN before any joint was counted). The functional twin
    is :func:`lightning_energy.metrics.functional.pa_mpjpe`.

    Example:
        >>> import torch
        >>> metric = PAMPJPE()
        >>> target = torch.tensor([[[0.0, 0, 0], [100, 0, 0], [0, 200, 0], [0, 0, 300]]])
        >>> metric.update(2.0 * target + 7.0, target)  # a similarity transform: error 0
        >>> metric.compute().abs() < 1e-6
        tensor(True)
    """

    error_sum: Tensor
    total: Tensor
    full_state_update: bool = False
    is_differentiable: bool = False
    higher_is_better: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, joint_mask: Tensor | None = None) -> None:
        """Accumulate the aligned joint errors of a batch of shape (B, J, 3)."""
        error_sum, total = _pa_mpjpe_update(pred, target, joint_mask)
        self.error_sum += error_sum
        self.total += total

    def compute(self) -> Tensor:
        """Mean aligned joint error over everything seen, float64 scalar."""
        return self.error_sum / self.total
