"""The toy robust-estimation task: learn a kernel-density mode estimator end to end."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MetricCollection

from lightning_energy.energies.toy import KernelDensityEnergy
from lightning_energy.layer import EnergyLayer
from lightning_energy.networks.point_weights import PointWeightNet
from lightning_energy.solvers.multistart import MultiStart
from lightning_energy.solvers.newton import Newton
from lightning_energy.solvers.solution import Solution
from lightning_energy.tasks.base import EnergyTask


def default_layer() -> EnergyLayer:
    """Kernel-density energy (σ = 1), Newton from 5 starts around the median."""
    starts = torch.tensor([[-6.0], [-3.0], [0.0], [3.0], [6.0]])
    return EnergyLayer(KernelDensityEnergy(1.0), MultiStart(Newton(max_steps=30, tol=1e-5),
                                                            starts))


class RobustMeanTask(EnergyTask):
    """Estimate a location from points with up to 75% outliers: x* = argmin_x E(x; σ, w).

    E(x; σ, w) = −Σᵢ wᵢ exp(−(cᵢ − x)²/σ²) (:class:`~lightning_energy.KernelDensityEnergy`);
    σ is learned, and the per-point weights w come from ``backbone`` (a
    :class:`~lightning_energy.networks.PointWeightNet`) when given, else 1. Loss: (x* − μ)².

    Batches are dicts with ``points`` (B, P) and ``location`` μ (B,). The arguments are
    :class:`~lightning_energy.EnergyTask`'s.

    Example:
        >>> import torch
        >>> from lightning_energy.networks import PointWeightNet
        >>> from lightning_energy.tasks import RobustMeanTask
        >>> task = RobustMeanTask(backbone=PointWeightNet())
        >>> batch = {"points": torch.randn(4, 32), "location": torch.zeros(4)}
        >>> solution = task(batch)  # x*: (B, 1)
        >>> task.loss(solution, batch).backward()  # reaches σ and the weight network
        >>> solution.x.shape, [group["name"] for group in task.parameter_groups()]
        (torch.Size([4, 1]), ['energy', 'backbone'])
    """

    def __init__(
        self,
        layer: EnergyLayer | None = None,
        backbone: PointWeightNet | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        energy_lr: float = 5e-2,
        backbone_lr: float | None = None,
        freeze_backbone: bool = False,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__(layer or default_layer(), backbone, optimizer, scheduler, energy_lr,
                         backbone_lr, freeze_backbone, scheduler_interval)

    def energy_inputs(self, batch: dict[str, Tensor]) -> Any:  # noqa: D102
        points = batch["points"]
        if self.backbone is None:
            return points
        return points, self.backbone(points)

    def loss(self, solution: Solution, batch: dict[str, Tensor]) -> Tensor:  # noqa: D102
        return ((solution.x[:, 0] - batch["location"]) ** 2).mean()

    def build_metrics(self) -> MetricCollection:  # noqa: D102
        return MetricCollection({"abs_error": MeanAbsoluteError()})

    def metric_inputs(self, solution: Solution, batch: dict[str, Tensor]) -> tuple[Tensor, ...]:  # noqa: D102
        return solution.x[:, 0], batch["location"]

    def baseline_errors(self, solution: Solution, batch: dict[str, Tensor]) -> dict[str, Tensor]:  # noqa: D102
        points, location = batch["points"], batch["location"]
        return {"energy": (solution.x[:, 0] - location).abs(),
                "sample median": (points.median(-1).values - location).abs(),
                "sample mean": (points.mean(-1) - location).abs()}
