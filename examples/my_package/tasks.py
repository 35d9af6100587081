"""The tutorial's LightningModule: point clouds in, the robust centre out."""

from torch import Tensor
from torchmetrics import MeanSquaredError, MetricCollection

from lightning_energy.solvers.solution import Solution
from lightning_energy.tasks.base import EnergyTask


class CentreTask(EnergyTask):
    """Batches are dicts with ``points`` (B, P, 2) and ``centre`` (B, 2)."""

    def energy_inputs(self, batch: dict[str, Tensor]) -> Tensor:
        return batch["points"]

    def loss(self, solution: Solution, batch: dict[str, Tensor]) -> Tensor:
        return (solution.x - batch["centre"]).pow(2).sum(-1).mean()

    def build_metrics(self) -> MetricCollection:
        return MetricCollection({"mse": MeanSquaredError()})

    def metric_inputs(self, solution: Solution, batch: dict[str, Tensor]) -> tuple[Tensor, ...]:
        return solution.x, batch["centre"]

    def baseline_errors(self, solution: Solution, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        centre = batch["centre"]
        return {"energy": (solution.x - centre).norm(dim=-1),
                "mean": (batch["points"].mean(1) - centre).norm(dim=-1)}

    def batch_size(self, batch: dict[str, Tensor]) -> int:
        return int(batch["points"].shape[0])
