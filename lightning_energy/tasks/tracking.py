"""The tracker-fusion task: learn a robust smoothing energy that fuses K trackers' boxes."""

from __future__ import annotations

from typing import Literal

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torchmetrics import MetricCollection

from lightning_energy.adjoints.implicit import ImplicitAdjoint
from lightning_energy.datasets.tracking_batch import TrackingBatch
from lightning_energy.energies.tracking import (
    BoxFrame,
    TrackFusionEnergy,
    TrackFusionInputs,
    consensus_boxes,
    fusion_inputs,
)
from lightning_energy.layer import EnergyLayer
from lightning_energy.linalg.solvers import Banded
from lightning_energy.metrics.functional import success_auc
from lightning_energy.metrics.tracking import MeanIoU, PrecisionAtPixels, SuccessAUC
from lightning_energy.networks.tracker import TrackerFeatureNet
from lightning_energy.solvers.banded_irls import BandedIRLS
from lightning_energy.solvers.solution import Solution
from lightning_energy.tasks.base import EnergyTask


def default_layer(num_trackers: int) -> EnergyLayer:
    """Fusion energy, banded IRLS (float64), implicit adjoint with the exact banded Hessian."""
    return EnergyLayer(TrackFusionEnergy(num_trackers), BandedIRLS(max_steps=300, tol=1e-5),
                       ImplicitAdjoint(damping=1e-2, linear_solver=Banded()))


def giou_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean of 1 − GIoU over masked frames.

    GIoU also pulls boxes that miss the target towards it; plain IoU, like the success AUC,
    gives no credit (and no gradient) until they overlap (1 − IoU measured no gain:
    docs/notes/tracking-rounds.md, round 7).

    Args:
        pred: Boxes ``(x, y, w, h)`` (B, T, 4), differentiable.
        target: Ground-truth boxes (B, T, 4).
        mask: Bool (B, T): frames that count.

    Returns:
        A scalar (0 when no frame counts).
    """
    p0, p1 = pred[..., :2], pred[..., :2] + pred[..., 2:]
    t0, t1 = target[..., :2], target[..., :2] + target[..., 2:]
    inter = (torch.minimum(p1, t1) - torch.maximum(p0, t0)).clamp_min(0).prod(-1)
    union = pred[..., 2:].prod(-1) + target[..., 2:].prod(-1) - inter
    hull = (torch.maximum(p1, t1) - torch.minimum(p0, t0)).prod(-1)
    score = inter / union.clamp_min(1e-6) - (hull - union) / hull.clamp_min(1e-6)
    loss = torch.where(mask, 1 - score, 0.0)
    return loss.sum() / mask.sum().clamp_min(1)


def batch_frame(batch: TrackingBatch) -> BoxFrame:
    """The :class:`BoxFrame` of a batch, as :func:`fusion_inputs` computes it."""
    return fusion_inputs(batch.boxes, batch.valid, batch.frame_valid)[1]


class TrackerFusionTask(EnergyTask):
    """Fuse the boxes of K trackers: x* = argmin_x E(x; α, β, δ, w, ℓ) on each window.

    The energy is a :class:`~lightning_energy.energies.tracking.TrackFusionEnergy`; the optional
    ``backbone`` (a :class:`~lightning_energy.networks.tracker.TrackerFeatureNet`) predicts the
    per-frame log-weights ℓ. Loss: 1 − GIoU of the fused boxes against the ground truth on valid
    frames. Metrics (OTB protocol, first frame included): ``success_auc``, ``precision_20px``,
    ``mean_iou``.

    Learned groups and their switches: α/β/δ (``TrackFusionEnergy(learn_smoothness=...)``),
    per-tracker base weights (``learn_tracker_weights``), the feature network (``backbone``
    None, or ``freeze_backbone``). Start the base weights from the trackers' training AUCs with
    the :class:`~lightning_energy.callbacks.TrackerWeightsFromAUC` callback; alternate the
    updates of the groups with :class:`~lightning_energy.callbacks.AlternatingUpdates`.

    Args:
        layer: The fusion layer (default :func:`default_layer` with ``num_trackers``).
        backbone: The tracker-feature network, or None for base weights only.
        optimizer: Optimizer factory.
        scheduler: Optional learning-rate scheduler factory.
        energy_lr: Learning rate of α, β, δ and the base weights.
        backbone_lr: Learning rate of the network (default ``energy_lr``).
        freeze_backbone: Keep the network fixed.
        num_trackers: K, used only to build the default layer.
        scheduler_interval: Step the scheduler every ``"epoch"`` or optimizer ``"step"``.

    Example:
        On simulated tracker boxes (windows of T = 16 frames, K = 8 trackers):

        >>> from lightning_energy.datamodules import TrackingDataModule
        >>> from lightning_energy.tasks import TrackerFusionTask
        >>> data = TrackingDataModule(synthetic_sequences=4, synthetic_length=30, window=16,
        ...                           batch_size=2, val_fraction=0.25, fold=0, num_folds=4)
        >>> data.setup("fit")
        >>> batch = next(iter(data.train_dataloader()))  # boxes (B, T, K, 4)
        >>> task = TrackerFusionTask(num_trackers=8)
        >>> solution = task(batch)
        >>> task.loss(solution, batch).backward()  # 1 − GIoU, through the implicit gradient
        >>> task.predicted_boxes(solution, batch).shape  # fused boxes (B, T, 4)
        torch.Size([2, 16, 4])
    """

    def __init__(
        self,
        layer: EnergyLayer | None = None,
        backbone: TrackerFeatureNet | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        energy_lr: float = 2e-2,
        backbone_lr: float | None = None,
        freeze_backbone: bool = False,
        num_trackers: int = 8,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__(layer or default_layer(num_trackers), backbone, optimizer, scheduler,
                         energy_lr, backbone_lr, freeze_backbone, scheduler_interval)

    def energy_inputs(self, batch: TrackingBatch) -> TrackFusionInputs:  # noqa: D102
        inputs, _ = fusion_inputs(batch.boxes, batch.valid, batch.frame_valid)
        if self.backbone is not None:
            energy = self.layer.energy
            # The energy's base weights are the network's notion of which trackers to trust.
            trust = (energy.log_tracker_weight.exp()
                     if isinstance(energy, TrackFusionEnergy) else None)
            inputs.logit = self.backbone(inputs, trust)
        return inputs

    def predicted_boxes(self, solution: Solution, batch: TrackingBatch) -> Tensor:
        """Fused pixel boxes ``(x, y, w, h)`` (B, T, 4) of a solution."""
        return batch_frame(batch).to_boxes(solution.x.to(batch.boxes.dtype))

    def loss(self, solution: Solution, batch: TrackingBatch) -> Tensor:  # noqa: D102
        mask = batch.target_valid & batch.frame_valid
        return giou_loss(self.predicted_boxes(solution, batch), batch.target, mask)

    def build_metrics(self) -> MetricCollection:  # noqa: D102
        return MetricCollection({"success_auc": SuccessAUC(), "precision_20px": PrecisionAtPixels(),
                                 "mean_iou": MeanIoU()})

    def metric_inputs(self, solution: Solution, batch: TrackingBatch) -> tuple[Tensor, ...]:  # noqa: D102
        return self.predicted_boxes(solution, batch).detach(), batch.target, batch.frame_valid

    def baseline_errors(self, solution: Solution, batch: TrackingBatch) -> dict[str, Tensor]:
        """1 − success AUC per sample of the fused track, the consensus median and the mean."""
        valid = batch.valid & batch.frame_valid[..., None]
        weights = valid.to(batch.boxes.dtype)[..., None]
        mean = (batch.boxes * weights).sum(2) / weights.sum(2).clamp_min(1)
        candidates = {"energy": self.predicted_boxes(solution, batch).detach(),
                      "median of all trackers": consensus_boxes(batch.boxes, valid),
                      "mean of all trackers": mean}
        return {name: _per_sample_error(boxes, batch) for name, boxes in candidates.items()}

    def batch_size(self, batch: TrackingBatch) -> int:  # noqa: D102
        return batch.batch_size


def _per_sample_error(boxes: Tensor, batch: TrackingBatch) -> Tensor:
    """1 − success AUC of each sample (B,)."""
    rows = [success_auc(boxes[i], batch.target[i], valid=batch.frame_valid[i])
            for i in range(batch.batch_size)]
    return 1 - torch.stack(rows).float()

