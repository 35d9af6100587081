"""Callbacks that log how the inner solves and the energy parameters evolve."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor, nn
from torchmetrics import MeanMetric

from lightning_energy.metrics.convergence import SolverConvergence
from lightning_energy.solvers.solution import Solution
from lightning_energy.tasks.base import metrics_key

_STAGES = ("train", "val", "test")


def _solution(outputs: Any) -> Solution | None:
    if isinstance(outputs, dict) and isinstance(outputs.get("solution"), Solution):
        return outputs["solution"]
    return None


class SolverDiagnostics(Callback):
    """Log ``{stage}/solver/…``: converged fraction, mean/max steps, gradient norm, masked share.

    Epoch-level values come from a DDP-correct :class:`~lightning_energy.metrics.SolverConvergence`
    per stage, and ``{stage}/solver/masked_share`` (the share of samples the layer gave no
    gradient, ``nonconverged="mask"``, non-finite solves included) from a torchmetrics
    ``MeanMetric`` weighted by batch size, so it too is exact over all processes. During
    training, per-step values are logged too: the solver's final damping, the number of masked
    samples among the number of solves (``train/solver/masked``, ``/solves``) and, from the
    step's backward pass (which has run when ``on_train_batch_end`` fires), the damping the
    adjoint used and how many samples needed the linear-solve fallback.

    Works with any task whose steps return ``{"loss": …, "solution": Solution}``
    (:class:`~lightning_energy.EnergyTask` does).

    Example:
        One convergence metric per stage, reduced over processes like any torchmetrics metric:

        >>> from lightning_energy.callbacks import SolverDiagnostics
        >>> diagnostics = SolverDiagnostics()  # e.g. pl.Trainer(callbacks=[diagnostics])
        >>> len(diagnostics.metrics), type(next(iter(diagnostics.metrics.values()))).__name__
        (3, 'SolverConvergence')
    """

    def __init__(self) -> None:
        super().__init__()
        self.metrics = nn.ModuleDict({metrics_key(s): SolverConvergence() for s in _STAGES})
        self.masked = nn.ModuleDict({metrics_key(s): MeanMetric() for s in _STAGES})

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Keep the metric states on the module's device."""
        self._place(pl_module)

    def _place(self, pl_module: pl.LightningModule) -> None:
        self.metrics.to(pl_module.device)
        self.masked.to(pl_module.device)

    def _update(self, pl_module: pl.LightningModule, outputs: Any, stage: str) -> None:
        solution = _solution(outputs)
        if solution is None:
            return
        self._place(pl_module)
        metric = cast(SolverConvergence, self.metrics[metrics_key(stage)])
        metric.update(solution.converged, solution.num_steps, solution.grad_norm)
        size = int(solution.converged.shape[0])
        # The layer counts masked samples among all the problems it solved, which may be more
        # than the rows of the task's solution (the pose task keeps one of M components).
        solves = int(solution.diagnostics.get("solves", size))
        masked = torch.as_tensor(solution.diagnostics.get("masked", 0), dtype=torch.float64,
                                 device=pl_module.device)
        share = cast(MeanMetric, self.masked[metrics_key(stage)])
        share.update(masked / max(solves, 1), weight=solves)
        if stage == "train":
            values = {"train/solver/damping": solution.damping.float().mean(),
                      "train/solver/masked": masked.float(),
                      "train/solver/solves": torch.as_tensor(float(solves),
                                                             device=pl_module.device)}
            for key, value in solution.diagnostics.items():
                if key.startswith("backward/"):
                    values[f"train/solver/{key}"] = torch.as_tensor(value).float()
            pl_module.log_dict(values, batch_size=size, on_step=True, on_epoch=False)

    def _log_epoch(self, pl_module: pl.LightningModule, stage: str) -> None:
        metric = cast(SolverConvergence, self.metrics[metrics_key(stage)])
        if int(metric.total) == 0 and not torch.distributed.is_initialized():
            return
        masked = cast(MeanMetric, self.masked[metrics_key(stage)])
        values = {f"{stage}/solver/{k}": v.float() for k, v in metric.compute().items()}
        values[f"{stage}/solver/masked_share"] = masked.compute().float()
        # The metrics have already reduced over the processes, so every rank holds the same
        # values; sync_dist with "max" tells Lightning so (no warning) and keeps them exact.
        pl_module.log_dict(values, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max")
        metric.reset()
        masked.reset()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,  # noqa: D102
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._update(pl_module, outputs, "train")

    def on_validation_batch_end(self, trainer: pl.Trainer,  # noqa: D102
                                pl_module: pl.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if not trainer.sanity_checking:
            self._update(pl_module, outputs, "val")

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,  # noqa: D102
                          outputs: Any, batch: Any, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        self._update(pl_module, outputs, "test")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._log_epoch(pl_module, "train")

    def on_validation_epoch_end(self, trainer: pl.Trainer,  # noqa: D102
                                pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log_epoch(pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._log_epoch(pl_module, "test")


class EnergyParameterMonitor(Callback):
    """Log every energy parameter over training, and the norm of their gradient.

    Scalar parameters are logged as ``energy/{name}`` (exponentiated too when the name starts
    with ``log_``, e.g. ``energy/bandwidth`` from ``log_bandwidth``). Tensor parameters are logged
    as ``energy/{name}/mean`` and ``/std`` and, with a logger that supports it (wandb), as a
    histogram every ``histogram_every`` steps. ``energy/grad_norm`` is the 2-norm of the loss's
    gradient over all the energy's parameters before each logged optimizer step (after AMP
    unscaling; ``inf``/``nan`` when the backward was not finite), the number to watch when a
    backward rule makes training unstable.

    Args:
        every_n_steps: Logging period in optimizer steps.
        histogram_every: Histogram period in optimizer steps (0 disables histograms).

    Example:
        >>> from lightning_energy.callbacks import EnergyParameterMonitor
        >>> monitor = EnergyParameterMonitor(every_n_steps=10, histogram_every=0)  # no histograms
        >>> monitor.every_n_steps, monitor.histogram_every
        (10, 0)
    """

    def __init__(self, every_n_steps: int = 1, histogram_every: int = 50) -> None:
        super().__init__()
        self.every_n_steps, self.histogram_every = every_n_steps, histogram_every

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,  # noqa: D102
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every_n_steps:
            return
        energy = getattr(pl_module, "energy", None)
        if not isinstance(energy, nn.Module):
            return
        values: dict[str, Tensor] = {}
        for name, param in energy.named_parameters():
            values.update(parameter_summary(name, param.detach()))
        pl_module.log_dict(values, on_step=True, on_epoch=False, batch_size=1)
        if self.histogram_every and step % self.histogram_every == 0:
            self._histograms(trainer, energy, step)

    def on_before_optimizer_step(self, trainer: pl.Trainer,  # noqa: D102
                                 pl_module: pl.LightningModule, optimizer: Any) -> None:
        energy = getattr(pl_module, "energy", None)
        # global_step advances after this step, before on_train_batch_end: the +1 logs the
        # norm in the same batches as the parameters.
        if (trainer.global_step + 1) % self.every_n_steps or not isinstance(energy, nn.Module):
            return
        grads = [p.grad.detach().double().norm() for p in energy.parameters() if p.grad is not None]
        if grads:
            norm = torch.stack(grads).norm().float()
            pl_module.log("energy/grad_norm", norm, on_step=True, on_epoch=False, batch_size=1)

    @staticmethod
    def _histograms(trainer: pl.Trainer, energy: nn.Module, step: int) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not loggers or trainer.global_rank:
            return
        import wandb

        data = {f"energy/{n}/histogram": wandb.Histogram(
            np_histogram=np.histogram(p.detach().float().cpu().numpy(), bins=64))
                for n, p in energy.named_parameters() if p.numel() > 1}
        for logger in loggers:
            if data:
                logger.experiment.log({**data, "trainer/global_step": step})


SMALL_VECTOR = 4
"""Tensor parameters with at most this many entries are also logged entry by entry."""


def parameter_summary(name: str, param: Tensor) -> dict[str, Tensor]:
    """Loggable scalars for one parameter.

    A scalar is logged as ``energy/{name}``, a tensor as ``energy/{name}/mean`` and ``/std``
    and, with at most :data:`SMALL_VECTOR` entries (e.g. the two smoothness weights of the
    tracking energy), each entry as ``energy/{name}/{i}``. A leaf named ``log_…`` is logged
    exponentiated too, under the name without ``log_``.

    Example:
        >>> import torch
        >>> out = parameter_summary("log_alpha", torch.tensor([0.0, 1.0]))
        >>> sorted(out), round(float(out["energy/alpha/1"]), 4)
        (['energy/alpha/0', 'energy/alpha/1', 'energy/log_alpha/0', 'energy/log_alpha/1', \
'energy/log_alpha/mean', 'energy/log_alpha/std'], 2.7183)
    """
    value = param.detach().float()
    leaf = name.rsplit(".", 1)[-1]
    plain = f"energy/{name[: len(name) - len(leaf)]}{leaf[4:]}" if leaf.startswith("log_") else None
    if value.numel() == 1:
        out = {f"energy/{name}": value.reshape(())}
        if plain:
            out[plain] = value.exp().reshape(())
        return out
    out = {f"energy/{name}/mean": value.mean(), f"energy/{name}/std": value.std()}
    if value.numel() <= SMALL_VECTOR:
        for i, entry in enumerate(value.flatten()):
            out[f"energy/{name}/{i}"] = entry
            if plain:
                out[f"{plain}/{i}"] = entry.exp()
    return out
