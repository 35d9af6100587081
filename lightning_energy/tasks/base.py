"""``EnergyTask``: the LightningModule base for learning energies end to end."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal, cast

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MetricCollection

from lightning_energy._tree import tree_leaves
from lightning_energy.layer import EnergyLayer
from lightning_energy.solvers.solution import Solution

STAGES = ("train", "val", "test")


class EnergyTask(pl.LightningModule, ABC):
    """Backbone (optional) → energy inputs → :class:`EnergyLayer` → loss, for fit/validate/test.

    Subclasses implement :meth:`energy_inputs` and :meth:`loss`; optionally
    :meth:`initial_solution`, :meth:`build_metrics` with :meth:`metric_inputs`,
    :meth:`baseline_errors` (end-of-run reports) and :meth:`baseline_metrics` (logged beside
    every test). One shared step serves training, validation and testing; everything is logged
    as ``"{stage}/{name}"``.

    Args:
        layer: The differentiable argmin; its energy's parameters are the energy parameters θ.
        backbone: Optional network producing (part of) the energy inputs; named ``backbone`` so
            that Lightning's ``BackboneFinetuning`` callback works as is.
        optimizer: Optimizer factory called with two parameter groups (energy, backbone).
        scheduler: Optional learning-rate scheduler factory (e.g. ``CosineAnnealingLR``).
        scheduler_interval: Step the scheduler every ``"epoch"`` or every optimizer ``"step"``.
        energy_lr: Learning rate of the energy parameters.
        backbone_lr: Learning rate of the backbone (default: ``energy_lr``).
        freeze_backbone: Keep the backbone fixed (no gradients, eval mode).

    Example:
        Learn a quadratic energy whose minimiser denoises its input:

        >>> import torch, lightning_energy as le
        >>> from lightning_energy.tasks import EnergyTask
        >>> class Denoise(EnergyTask):
        ...     def energy_inputs(self, batch):
        ...         return batch["noisy"]  # (B, 3)
        ...     def loss(self, solution, batch):
        ...         return (solution.x - batch["clean"]).pow(2).mean()
        >>> task = Denoise(le.EnergyLayer(le.QuadraticEnergy(3), le.Newton(dtype="float64")))
        >>> batch = {"noisy": torch.randn(8, 3), "clean": torch.zeros(8, 3)}
        >>> solution = task(batch)  # what training_step solves, before logging the loss
        >>> task.loss(solution, batch).backward()
        >>> solution.x.shape, [group["name"] for group in task.parameter_groups()]
        (torch.Size([8, 3]), ['energy'])
    """

    def __init__(
        self,
        layer: EnergyLayer,
        backbone: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        energy_lr: float = 1e-2,
        backbone_lr: float | None = None,
        freeze_backbone: bool = False,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__()
        check_learning_rates(energy_lr=energy_lr, backbone_lr=backbone_lr)
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Expected `scheduler_interval` 'epoch' or 'step', got "
                             f"{scheduler_interval!r}.")
        self.scheduler_interval = scheduler_interval
        self.layer = layer
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.energy_lr = energy_lr
        self.attach_backbone(backbone, backbone_lr, freeze_backbone)
        self.metrics = nn.ModuleDict()
        for stage in STAGES:
            collection = self.build_metrics()
            if collection is not None:
                self.metrics[metrics_key(stage)] = collection.clone(prefix=f"{stage}/")

    def attach_backbone(self, backbone: nn.Module | None, backbone_lr: float | None = None,
                        freeze: bool = False) -> None:
        """Set the backbone, its learning rate (default ``energy_lr``) and whether it is frozen.

        For subclasses whose constructor builds the layer first and takes the network under a
        name of its own (``ImagePoseTask(detector=…)``).
        """
        check_learning_rates(backbone_lr=backbone_lr)
        self.backbone = backbone
        self.backbone_lr = self.energy_lr if backbone_lr is None else backbone_lr
        self.freeze_backbone = freeze
        if freeze and backbone is not None:
            backbone.requires_grad_(False)

    @property
    def energy(self) -> nn.Module:
        """The energy module (its parameters are the energy parameters θ)."""
        return self.layer.energy

    @abstractmethod
    def energy_inputs(self, batch: Any) -> Any:
        """The energy's ``inputs`` for a batch (may run ``self.backbone``)."""

    @abstractmethod
    def loss(self, solution: Solution, batch: Any) -> Tensor:
        """Scalar training loss from the solution and the batch's targets."""

    def trainable(self, solution: Solution) -> Tensor:
        """(B,) bool: the samples a loss should count.

        Under ``nonconverged="mask"`` the layer gives a non-converged x* no gradient. A loss that
        reads θ only through x* may keep such samples (their gradient is then zero), but a loss
        that also depends on θ directly (say, a pose built from learned bases at x*) would send
        only that direct half, which the missing implicit half largely cancels: leave them out
        with ``solution.x[task.trainable(solution)]``. Under ``"warn"`` every sample counts.
        """
        if self.layer.nonconverged == "mask":
            return solution.converged
        return torch.ones_like(solution.converged)

    def initial_solution(self, batch: Any, inputs: Any) -> Tensor | None:
        """Starting points (B, *shape); ``None`` uses ``energy.initial_solution(inputs)``."""
        return None

    def build_metrics(self) -> MetricCollection | None:
        """Torchmetrics to track per stage (cloned for train/val/test)."""
        return None

    def metric_inputs(self, solution: Solution, batch: Any) -> tuple[Tensor, ...]:
        """Arguments of the metrics' ``update`` (default: ``solution.x`` only)."""
        return (solution.x,)

    def baseline_errors(self, solution: Solution, batch: Any) -> dict[str, Tensor]:
        """Per-sample errors (B,) of the learned solution and of baselines, for end-of-run reports.

        The key ``"energy"`` should hold the layer's own error. Default: no report.
        """
        return {}

    def baseline_metrics(self, solution: Solution, batch: Any) -> dict[str, Tensor]:
        """Per-sample metrics (B,) of baselines, logged as ``test/baseline/{key}`` (batch means).

        Keys read ``"{baseline}/{metric}"``, e.g. ``"DLT triangulation/mpjpe"``, so a results
        table can put each baseline on its own row beside the energy. Default: none.
        """
        return {}

    def batch_size(self, batch: Any) -> int:
        """Number of samples in a batch, for logging weights.

        A ``batch_size`` attribute if the batch has one, else the leading dimension of its first
        tensor.
        """
        size = getattr(batch, "batch_size", None)
        if isinstance(size, int):
            return size
        leaves = tree_leaves(batch)
        return int(leaves[0].shape[0]) if leaves and leaves[0].dim() else 1

    def forward(self, batch: Any) -> Solution:
        """Solve the energy for a batch."""
        inputs = self.energy_inputs(batch)
        return self.layer(inputs, self.initial_solution(batch, inputs))

    def shared_step(self, batch: Any, stage: str) -> dict[str, Any]:
        """Solve, compute the loss and log ``"{stage}/…"``; returns loss and solution."""
        solution = self(batch)
        loss = self.loss(solution, batch)
        size = self.batch_size(batch)
        self.log(f"{stage}/loss", loss, batch_size=size, prog_bar=True,
                 on_step=stage == "train", on_epoch=True, sync_dist=True)
        if metrics_key(stage) in self.metrics:
            collection = cast(MetricCollection, self.metrics[metrics_key(stage)])
            collection.update(*self.metric_inputs(solution, batch))
            self.log_dict(collection, batch_size=size, on_step=False, on_epoch=True)
        if stage == "test":
            for key, values in self.baseline_metrics(solution, batch).items():
                self.log(f"test/baseline/{key}", values.double().mean(), batch_size=size,
                         on_step=False, on_epoch=True, sync_dist=True)
        return {"loss": loss, "solution": detach_solution(solution)}

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:  # noqa: D102
        return self.shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:  # noqa: D102
        return self.shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:  # noqa: D102
        return self.shared_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Solution:
        """The (detached) solutions of a batch."""
        return detach_solution(self(batch))

    def on_train_epoch_start(self) -> None:  # noqa: D102
        if self.freeze_backbone and self.backbone is not None:
            self.backbone.eval()

    def energy_groups(self) -> list[dict[str, Any]]:
        """The energy parameters' optimizer groups (one ``"energy"`` group at ``energy_lr``).

        Override this, not :meth:`parameter_groups`, to give parts of the energy their own
        rates: the backbone's group is added to whatever it returns.
        """
        return [{"params": [p for p in self.layer.parameters() if p.requires_grad],
                 "lr": self.energy_lr, "name": "energy"}]

    def parameter_groups(self) -> list[dict[str, Any]]:
        """:meth:`energy_groups` and the trainable backbone's group, with their learning rates."""
        groups = self.energy_groups()
        if self.backbone is not None and not self.freeze_backbone:
            params = [p for p in self.backbone.parameters() if p.requires_grad]
            if params:
                groups.append({"params": params, "lr": self.backbone_lr, "name": "backbone"})
        return [g for g in groups if g["params"]]

    def configure_optimizers(self) -> Any:  # noqa: D102
        optimizer = self.optimizer_factory(self.parameter_groups())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {
            "scheduler": self.scheduler_factory(optimizer), "interval": self.scheduler_interval}}


def check_learning_rates(**rates: float | None) -> None:
    """Raise ``ValueError`` naming the first rate that is given but not a positive number."""
    for name, rate in rates.items():
        if rate is not None and not (isinstance(rate, int | float) and rate > 0):
            raise ValueError(f"Expected `{name}` to be a float > 0, got {rate!r}.")


def metrics_key(stage: str) -> str:
    """ModuleDict key of a stage's metrics ("train" would shadow ``nn.Module.train``)."""
    return f"{stage}_metrics"


def detach_solution(solution: Solution) -> Solution:
    """A copy of ``solution`` with ``x`` detached (safe to keep after the step)."""
    return Solution(
        x=solution.x.detach(), value=solution.value, status=solution.status,
        converged=solution.converged, num_steps=solution.num_steps,
        grad_norm=solution.grad_norm, damping=solution.damping,
        diagnostics=solution.diagnostics,
    )  # the curvature is left out: only the adjoint needs it
