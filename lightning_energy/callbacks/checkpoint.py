"""Checkpointing whose folder does not depend on the logger's run id."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` saving ``last.ckpt`` under ``{default_root_dir}/checkpoints``.

    A logger such as wandb gives every run a new id, and ``ModelCheckpoint`` puts checkpoints
    under it, so ``fit --ckpt_path last`` would not find the previous run's checkpoint. This
    callback keeps one stable folder per ``trainer.default_root_dir`` (set it per experiment).

    Args:
        dirpath: Explicit folder (default: ``{default_root_dir}/checkpoints``).
        monitor: Metric to rank checkpoints by (``None``: keep the latest only).
        mode: ``"min"`` or ``"max"`` for ``monitor``.
        save_top_k: How many ranked checkpoints to keep.
        every_n_epochs: Checkpoint period in epochs.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        monitor: str | None = None,
        mode: str = "min",
        save_top_k: int = 1,
        every_n_epochs: int | None = None,
    ) -> None:
        super().__init__(dirpath=dirpath, monitor=monitor, mode=mode, save_top_k=save_top_k,
                         every_n_epochs=every_n_epochs, save_last=True)

    def _resolve(self, trainer: pl.Trainer) -> None:
        if self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:  # noqa: D102
        self._resolve(trainer)
        super().setup(trainer, pl_module, stage)

    def _find_last_checkpoints(self, trainer: pl.Trainer) -> set[str]:
        # `--ckpt_path last` is resolved before `setup`: fix the folder first.
        self._resolve(trainer)
        return super()._find_last_checkpoints(trainer)
