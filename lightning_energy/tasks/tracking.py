"""The tracker-fusion task: learn a robust smoothing energy that fuses K trackers' boxes."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torch.optim import Optimizer
from torchmetrics import MetricCollection

from lightning_energy.baselines.tracking import tracker_aucs
from lightning_energy.data.tracking_batch import TrackingBatch
from lightning_energy.energies.tracking import (
    BoxFrame,
    TrackFusionEnergy,
    TrackFusionInputs,
    consensus_boxes,
    fusion_inputs,
)
from lightning_energy.energies.tracking_solvers import BandedImplicitAdjoint, BandedIRLS
from lightning_energy.errors import ShapeError
from lightning_energy.layer import EnergyLayer
from lightning_energy.metrics.functional import success_auc
from lightning_energy.metrics.tracking import MeanIoU, PrecisionAtPixels, SuccessAUC
from lightning_energy.networks.tracker import TrackerFeatureNet
from lightning_energy.solvers.solution import Solution
from lightning_energy.tasks.base import EnergyTask


def default_layer(num_trackers: int) -> EnergyLayer:
    """Fusion energy, banded IRLS (float64), implicit adjoint with the exact banded Hessian."""
    return EnergyLayer(TrackFusionEnergy(num_trackers), BandedIRLS(max_steps=50, tol=1e-5),
                       BandedImplicitAdjoint(damping=1e-2))


def giou_loss(pred: Tensor, target: Tensor, mask: Tensor, generalized: bool = True) -> Tensor:
    """Mean of 1 − GIoU (or 1 − IoU) over masked frames.

    GIoU also pulls boxes that miss the target towards it; plain IoU, like the success AUC,
    gives no credit (and no gradient) until they overlap.

    Args:
        pred: Boxes ``(x, y, w, h)`` (B, T, 4), differentiable.
        target: Ground-truth boxes (B, T, 4).
        mask: Bool (B, T): frames that count.
        generalized: GIoU if True, else IoU.

    Returns:
        A scalar (0 when no frame counts).
    """
    p0, p1 = pred[..., :2], pred[..., :2] + pred[..., 2:]
    t0, t1 = target[..., :2], target[..., :2] + target[..., 2:]
    inter = (torch.minimum(p1, t1) - torch.maximum(p0, t0)).clamp_min(0).prod(-1)
    union = pred[..., 2:].prod(-1) + target[..., 2:].prod(-1) - inter
    score = inter / union.clamp_min(1e-6)
    if generalized:
        hull = (torch.maximum(p1, t1) - torch.minimum(p0, t0)).prod(-1)
        score = score - (hull - union) / hull.clamp_min(1e-6)
    loss = torch.where(mask, 1 - score, 0.0)
    return loss.sum() / mask.sum().clamp_min(1)


def batch_frame(batch: TrackingBatch) -> BoxFrame:
    """The :class:`BoxFrame` of a batch, as :func:`fusion_inputs` computes it."""
    return fusion_inputs(batch.boxes, batch.valid, batch.frame_valid)[1]


class TrackerFusionTask(EnergyTask):
    """Fuse the boxes of K trackers: x* = argmin_x E(x; α, β, δ, w, ℓ) on each window.

    The energy is a :class:`~lightning_energy.energies.tracking.TrackFusionEnergy`; the optional
    ``backbone`` (a :class:`~lightning_energy.networks.tracker.TrackerFeatureNet`) predicts the
    per-frame log-weights ℓ. Loss: 1 − GIoU (``box_loss="giou"``) or 1 − IoU (``"iou"``) of the
    fused boxes against the ground truth on valid frames. Metrics (OTB protocol, first frame
    included): ``success_auc``, ``precision_20px``, ``mean_iou``.

    Learned groups and their switches: α/β/δ (``TrackFusionEnergy(learn_smoothness=...)``),
    per-tracker base weights (``learn_tracker_weights``), the feature network (``backbone``
    None, or ``freeze_backbone``). ``alternate_every`` > 0 alternates the updates: for that many
    optimizer steps only the energy parameters move, then only the network, and so on.

    Args:
        layer: The fusion layer (default :func:`default_layer` with ``num_trackers``).
        backbone: The tracker-feature network, or None for base weights only.
        optimizer: Optimizer factory.
        scheduler: Optional learning-rate scheduler factory.
        energy_lr: Learning rate of α, β, δ and the base weights.
        backbone_lr: Learning rate of the network (default ``energy_lr``).
        freeze_backbone: Keep the network fixed.
        alternate_every: Steps per phase of alternating updates (0: joint updates).
        num_trackers: K, used only to build the default layer.
        auc_temperature: If set, the first fit whose weights do not come from a checkpoint
            starts the base weights at exp((AUC_k − max AUC) / ``auc_temperature``), AUC_k
            being tracker k's success AUC on the datamodule's training sequences (a
            :class:`~lightning_energy.data.tracking_datamodule.TrackingDataModule`); the
            cross-validation harness's grid search always preferred such weights to uniform ones.
        box_loss: ``"giou"`` or ``"iou"`` (see :func:`giou_loss`).
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
        alternate_every: int = 0,
        num_trackers: int = 8,
        auc_temperature: float | None = None,
        box_loss: Literal["giou", "iou"] = "giou",
    ) -> None:
        if box_loss not in ("giou", "iou"):
            raise ValueError(f"Expected `box_loss` 'giou' or 'iou', got {box_loss!r}.")
        if alternate_every < 0:
            raise ValueError(f"Expected `alternate_every` >= 0, got {alternate_every}.")
        if auc_temperature is not None and not auc_temperature > 0:
            raise ValueError(f"Expected `auc_temperature` > 0 or None, got {auc_temperature}.")
        super().__init__(layer or default_layer(num_trackers), backbone, optimizer, scheduler,
                         energy_lr, backbone_lr, freeze_backbone)
        self.alternate_every = alternate_every
        self.auc_temperature = auc_temperature
        self.box_loss = box_loss
        self._weights_from_aucs = False

    def on_fit_start(self) -> None:
        """With ``auc_temperature``, start the base weights from the training AUCs, once.

        Not when the weights come from a checkpoint (``fit --ckpt_path``, ``load_from_checkpoint``)
        or from an earlier fit of this module. A ``load_state_dict`` before ``fit`` is not
        seen: set ``auc_temperature`` to None to fine-tune such weights.
        """
        super().on_fit_start()
        if self.auc_temperature is None or self._weights_from_aucs:
            return
        energy, datamodule = self.layer.energy, getattr(self.trainer, "datamodule", None)
        if not isinstance(energy, TrackFusionEnergy):
            raise TypeError(f"`auc_temperature` needs a TrackFusionEnergy, got "
                            f"{type(energy).__name__}.")
        data, splits = getattr(datamodule, "data", None), getattr(datamodule, "splits", None)
        if data is None or splits is None:
            raise ValueError("`auc_temperature` needs a TrackingDataModule (its training "
                             f"sequences), got {type(datamodule).__name__}.")
        if data.num_trackers != energy.num_trackers:
            raise ShapeError(f"`auc_temperature`: the data has {data.num_trackers} trackers, "
                             f"the energy's `num_trackers` is {energy.num_trackers}.")
        aucs = torch.as_tensor(tracker_aucs(data.subset(splits["train"])))
        target = energy.log_tracker_weight
        # log of exp((AUC − max)/T), formed directly so that small temperatures cannot underflow.
        log_weights = (aucs - aucs.max()) / self.auc_temperature
        with torch.no_grad():
            target.copy_(log_weights.to(dtype=target.dtype, device=target.device))
        self._weights_from_aucs = True

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A checkpoint's base weights are kept (see :meth:`on_fit_start`)."""
        super().on_load_checkpoint(checkpoint)
        self._weights_from_aucs = True

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
        return giou_loss(self.predicted_boxes(solution, batch), batch.target, mask,
                         generalized=self.box_loss == "giou")

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

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        """Alternating updates: drop the gradients of the group that rests this phase."""
        if not self.alternate_every or self.backbone is None:
            return
        phase = (self.global_step // self.alternate_every) % 2
        resting = self.backbone if phase == 0 else self.layer
        for param in resting.parameters():
            param.grad = None


def _per_sample_error(boxes: Tensor, batch: TrackingBatch) -> Tensor:
    """1 − success AUC of each sample (B,)."""
    rows = [success_auc(boxes[i], batch.target[i], valid=batch.frame_valid[i])
            for i in range(batch.batch_size)]
    return 1 - torch.stack(rows).float()

