"""Checkpointing whose folder does not depend on the logger's run id."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_energy.errors import CheckpointNotFoundError


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` keeping one ``last.ckpt`` under ``{default_root_dir}/checkpoints``.

    A logger such as wandb gives every run a new id, and ``ModelCheckpoint`` puts checkpoints
    under it, so ``fit --ckpt_path last`` would not find the previous run's checkpoint. This
    callback keeps one stable folder per ``trainer.default_root_dir`` (set it per experiment)
    and makes ``--ckpt_path last`` mean that folder's ``last.ckpt``:

    - ``last.ckpt`` is overwritten by every run in the folder, never versioned
      (``last-v1.ckpt``…), so ``--ckpt_path last`` cannot pick a stale or foreign file;
    - nothing is written under ``trainer.fast_dev_run``;
    - ``--ckpt_path last`` with no ``last.ckpt`` raises :class:`CheckpointNotFoundError` naming
      the folder, instead of Lightning's warning and a silent start from scratch.

    Args:
        dirpath: Explicit folder (default: ``{default_root_dir}/checkpoints``).
        monitor: Metric to rank checkpoints by (``None``: keep the latest only).
        mode: ``"min"`` or ``"max"`` for ``monitor``.
        save_top_k: How many ranked checkpoints to keep.
        every_n_epochs: Checkpoint period in epochs.

    Example:
        >>> from lightning_energy.callbacks import RunCheckpoint
        >>> checkpoint = RunCheckpoint(dirpath="runs/toy/checkpoints")
        >>> checkpoint.last_path.parts[-3:], checkpoint.save_last
        (('toy', 'checkpoints', 'last.ckpt'), True)
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
                         every_n_epochs=every_n_epochs, save_last=True,
                         enable_version_counter=False)

    def _resolve(self, trainer: pl.Trainer) -> None:
        if self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:  # noqa: D102
        self._resolve(trainer)
        super().setup(trainer, pl_module, stage)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        # Lightning's own end-of-training save of last.ckpt ignores fast_dev_run (its other
        # save points respect it), which left a one-batch checkpoint for `--ckpt_path last`.
        if not getattr(trainer, "fast_dev_run", False):
            super().on_train_end(trainer, pl_module)

    @property
    def last_path(self) -> Path:
        """``{dirpath}/last.ckpt`` (``dirpath`` is resolved at ``setup``)."""
        return Path(str(self.dirpath)) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"

    def _find_last_checkpoints(self, trainer: pl.Trainer) -> set[str]:
        # `--ckpt_path last` is resolved before `setup`: fix the folder first.
        self._resolve(trainer)
        if not self.last_path.is_file():
            raise CheckpointNotFoundError(
                f"Expected a checkpoint to resume from for `ckpt_path: last` at {self.last_path}, "
                f"found none: drop `--ckpt_path last` to start afresh, or set "
                f"`trainer.default_root_dir` to the folder of the run to continue.")
        return {str(self.last_path)}
