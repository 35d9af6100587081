"""3D human pose metrics: MPJPE, PA-MPJPE (Human3.6M protocols #1, #2), systematic offset.

The offset is the per-joint bias behind an MPJPE, shared by every frame seen.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_energy.metrics._checks import _check_root
from lightning_energy.metrics.functional import (
    _mpjpe_update,
    _pa_mpjpe_update,
    _systematic_offset_compute,
    body_frame_errors,
)


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


class SystematicOffset(Metric):
    """The per-joint bias shared by all frames seen, in mm (or the MPJPE left without it).

    Each joint's root-aligned error is taken in the truth's body frame (x right along the hips,
    y forward, z up) and averaged over every frame seen: what per-frame noise does not explain
    (on Human3.6M, a subject's body sitting too high above its root). ``compute()`` returns the
    mean over joints of the bias's norm, or with ``remainder`` the MPJPE after subtracting each
    joint's bias. Every frame's errors are kept (a ``cat`` state: 17 × 3 floats per frame), so
    the DDP value equals the single-process one. The functional twin is
    :func:`lightning_energy.metrics.functional.systematic_offset`.

    As input to ``update`` / ``forward``: ``pred`` and ``target`` poses (B, J, 3), mm, z up.

    Args:
        root: Root joint for alignment (0 = pelvis in the Human3.6M 17-joint layout).
        right_hip: Right hip joint (1 in that layout).
        left_hip: Left hip joint (4 in that layout).
        remainder: Report the MPJPE without the bias instead of the bias.

    Example:
        >>> import torch
        >>> target = torch.zeros(2, 5, 3)
        >>> target[:, 1, 0], target[:, 4, 0] = 100.0, -100.0  # right and left hip
        >>> metric = SystematicOffset()
        >>> metric.update(target + torch.tensor([0.0, 0.0, 10.0]) * (torch.arange(5) == 2)[:, None],
        ...               target)  # joint 2 is 10 mm too high
        >>> metric.compute()  # 10 mm on one joint of 5
        tensor(2., dtype=torch.float64)
    """

    errors: list[Tensor]
    full_state_update: bool = False
    is_differentiable: bool = False
    higher_is_better: bool = False

    def __init__(self, root: int = 0, right_hip: int = 1, left_hip: int = 4,
                 remainder: bool = False) -> None:
        super().__init__()
        self.root, self.right_hip, self.left_hip = root, right_hip, left_hip
        self.remainder = remainder
        self.add_state("errors", [], dist_reduce_fx="cat")

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Keep the body-frame errors of a batch (B, J, 3)."""
        self.errors.append(body_frame_errors(pred.detach(), target, self.root, self.right_hip,
                                             self.left_hip))

    def compute(self) -> Tensor:
        """The bias (or what is left without it), float64 scalar; NaN before any frame."""
        # A list of batches, or one tensor once DDP has gathered them.
        state: list[Tensor] | Tensor = self.errors
        if isinstance(state, list):
            if not state:
                return torch.tensor(float("nan"), dtype=torch.float64)
            state = torch.cat(state)
        return _systematic_offset_compute(state, self.remainder)
