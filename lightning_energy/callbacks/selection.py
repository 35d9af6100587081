"""Checkpoint choice on validation: end ``fit`` with the weights that validated best."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from torch import Tensor


class BestOnValidation(Callback):
    """Track a validation metric during ``fit``; restore the best-scoring weights at its end.

    After every validation run the monitored value is compared with the best so far (strictly
    better wins, so on ties the earliest state is kept) and the module's state is copied. At
    the end of ``fit`` the module is put back into the best state, so a ``test`` that follows
    evaluates it, and ``{default_root_dir}/checkpoints/best.ckpt`` holds it for later
    ``test --ckpt_path``. ``last.ckpt`` keeps the last weights, for resuming.

    With ``include_start`` the weights before the first optimizer step compete too: Lightning
    validates them in its sanity check, which must then cover the whole validation set
    (``trainer.num_sanity_val_steps: -1``; checked at the start of ``fit``).

    Args:
        monitor: Logged metric, e.g. ``"val/success_auc"``.
        mode: ``"max"`` or ``"min"``.
        include_start: Let the starting weights compete (see above).

    Example:
        >>> from lightning_energy.callbacks import BestOnValidation
        >>> best = BestOnValidation(monitor="val/loss", mode="min")
        >>> best.best_score, best.history  # nothing validated yet
        (inf, [])
    """

    def __init__(self, monitor: str, mode: Literal["max", "min"] = "max",
                 include_start: bool = True) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"Expected `mode` 'max' or 'min', got {mode!r}.")
        self.monitor, self.mode, self.include_start = monitor, mode, include_start
        self.best_score = -math.inf if mode == "max" else math.inf
        self.best_step: int | None = None
        self.history: list[tuple[int, float]] = []
        self._best_state: dict[str, Tensor] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:  # noqa: D102
        if stage == "fit" and self.include_start and trainer.num_sanity_val_steps != math.inf:
            raise ValueError(
                "BestOnValidation(include_start=True) needs the sanity check to validate the "
                "whole validation set: set `trainer.num_sanity_val_steps: -1` (got "
                f"{trainer.num_sanity_val_steps}), or include_start=False.")

    def on_sanity_check_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if self.include_start:
            self._consider(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if not trainer.sanity_checking:
            self._consider(trainer, pl_module)

    def _consider(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            available = sorted(trainer.callback_metrics)
            raise KeyError(f"BestOnValidation: `monitor`={self.monitor!r} was not logged in "
                           f"validation; logged: {available}.")
        score = float(value)
        self.history.append((trainer.global_step, score))
        better = score > self.best_score if self.mode == "max" else score < self.best_score
        if better:
            self.best_score, self.best_step = score, trainer.global_step
            self._best_state = {k: v.detach().to("cpu", copy=True)
                                for k, v in pl_module.state_dict().items()}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if self._best_state is None:
            return
        pl_module.load_state_dict(self._best_state)
        path = Path(trainer.default_root_dir) / "checkpoints" / "best.ckpt"
        if not getattr(trainer, "fast_dev_run", False):
            trainer.save_checkpoint(path, weights_only=True)

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return {"best_score": self.best_score, "best_step": self.best_step,
                "history": list(self.history), "best_state": copy.copy(self._best_state)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: D102
        self.best_score, self.best_step = state_dict["best_score"], state_dict["best_step"]
        self.history = [(int(step), float(score)) for step, score in state_dict["history"]]
        self._best_state = state_dict["best_state"]

