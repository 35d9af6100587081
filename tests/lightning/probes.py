"""Callbacks the resume tests inject through the CLI (``--trainer.callbacks+=…``)."""

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


class Interrupted(RuntimeError):
    """Raised by :class:`Interrupt`: stands for a killed process."""


class Interrupt(Callback):
    """Raise :class:`Interrupted` after optimizer step ``at_step`` (every rank, same step)."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: object, batch: object, batch_idx: int) -> None:
        if trainer.global_step == self.at_step:
            raise Interrupted(f"interrupted after step {self.at_step}")


class StateProbe(Callback):
    """Dump, per rank, the loop counters and optimizer state at the start of training and the
    parameters, optimizer state and logged metrics at its end, to ``{out}/{start,end}{rank}.pt``."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def _dump(self, name: str, trainer: pl.Trainer, **extra: object) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        state = {"global_step": trainer.global_step, "epoch": trainer.current_epoch,
                 "optimizer": trainer.optimizers[0].state_dict(),
                 "world_size": trainer.world_size, **extra}
        torch.save(state, self.out / f"{name}{trainer.global_rank}.pt")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._dump("start", trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        params = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        metrics = {k: v.detach().clone() for k, v in trainer.callback_metrics.items()}
        self._dump("end", trainer, params=params, metrics=metrics)
