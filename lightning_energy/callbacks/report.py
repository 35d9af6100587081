"""End-of-run comparison of the learned energy with its untrained self and with baselines."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor


class BaselineReport(Callback):
    """Evaluate the task's ``baseline_errors`` on the validation set before and after training.

    "Before" is measured when training starts, after every ``on_fit_start`` and
    :class:`~lightning_energy.callbacks.InitStep` has set the starting point, so the gain shown
    is what training did, not what the start did. Prints (rank 0) a table with the energy at
    the start of this fit, the trained energy and every baseline the task reports, and logs the
    final values as ``report/{name}``. The trainer's
    ``limit_val_batches`` applies; the batches are shared out over the processes and the means
    reduced over all of them.

    Example:
        What it prints at the end of ``fit`` (the errors come from the task's
        ``baseline_errors``):

        >>> from lightning_energy.callbacks import BaselineReport
        >>> report = BaselineReport()
        >>> report.before, report.after = {"energy": 1.5}, {"energy": 0.5, "median": 0.8}
        >>> print(report.format())
        Validation error (mean per sample):
          energy, start of training  1.5000
          energy, trained            0.5000
          median                     0.8000
    """

    def __init__(self) -> None:
        super().__init__()
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self.before = self.evaluate(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self.after = self.evaluate(trainer, pl_module)
        if not self.after:
            return
        rank_zero_info(self.format())
        for logger in trainer.loggers:
            logger.log_metrics({f"report/{k}": v for k, v in self.after.items()},
                               step=trainer.global_step)

    def format(self) -> str:
        """The comparison as text."""
        rows = [("energy, start of training", self.before.get("energy", float("nan"))),
                ("energy, trained", self.after.get("energy", float("nan")))]
        rows += [(k, v) for k, v in self.after.items() if k != "energy"]
        width = max(len(name) for name, _ in rows)
        lines = ["Validation error (mean per sample):"]
        lines += [f"  {name:<{width}}  {value:.4f}" for name, value in rows]
        return "\n".join(lines)

    @torch.no_grad()
    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """Mean of each per-sample error over the validation set (all ranks)."""
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not hasattr(pl_module, "baseline_errors"):
            return {}
        was_training = pl_module.training
        pl_module.eval()
        sums: dict[str, Tensor] = {}
        count = torch.zeros((), device=pl_module.device, dtype=torch.float64)
        rank, world = trainer.global_rank, trainer.world_size
        loader = datamodule.val_dataloader()
        limit = _batch_limit(trainer.limit_val_batches, len(loader))
        for index, batch in enumerate(loader):
            if index >= limit:
                break
            if index % world != rank:  # each process evaluates its share of the batches
                continue
            batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
            task: Any = pl_module  # ``baseline_errors`` checked above
            errors = task.baseline_errors(pl_module(batch), batch)
            for name, err in errors.items():
                sums[name] = sums.get(name, 0) + err.double().sum()
            count += next(iter(errors.values())).numel() if errors else 0
        pl_module.train(was_training)
        # Every rank joins every reduction, also one that evaluated no batch (else rank 0 waits
        # forever): the names come from all ranks.
        names = sorted(_all_names(trainer, sums))
        if not names:
            return {}
        total = trainer.strategy.reduce(count, reduce_op="sum")
        zero = torch.zeros((), device=pl_module.device, dtype=torch.float64)
        return {k: float(trainer.strategy.reduce(sums.get(k, zero), reduce_op="sum") / total)
                for k in names}


def _all_names(trainer: pl.Trainer, sums: dict[str, Tensor]) -> set[str]:
    """The error names any rank saw."""
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return set(sums)
    gathered: list[list[str] | None] = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, sorted(sums))
    return {name for names in gathered for name in names or []}


def _batch_limit(limit: int | float | None, available: int) -> int:
    """Batches to evaluate under Lightning's ``limit_val_batches`` convention."""
    if limit is None:
        return available
    if isinstance(limit, int):
        return min(limit, available)
    return available if limit >= 1.0 else int(limit * available)
