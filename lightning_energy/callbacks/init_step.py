"""Callbacks that set an energy's starting point from the data, once, before any stage runs."""

from __future__ import annotations

from abc import abstractmethod

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class InitStep(Callback):
    """Apply :meth:`apply` once, at the ``setup`` of the first stage this callback sees.

    For starting points that depend on the data (tracker weights from training scores, a pose
    model re-fitted to training poses): a Lightning ``setup`` runs after the datamodule's, so
    :meth:`apply` may read its splits. It runs for ``fit`` and equally for a ``validate`` or
    ``test`` of an untrained module, so a baseline is the recipe tested without training. It
    does not run when ``fit`` resumes (``--ckpt_path``), and a checkpoint loaded by ``validate``
    or ``test`` replaces what it set, so trained weights are never overwritten; nor does it run
    again in later stages of the same trainer (a ``test`` after ``fit``).

    Example:
        >>> import types, torch
        >>> from lightning_energy.callbacks import InitStep
        >>> class ZeroBias(InitStep):
        ...     def apply(self, trainer, pl_module):
        ...         with torch.no_grad():
        ...             pl_module.bias.zero_()
        >>> module, step = torch.nn.Linear(2, 1), ZeroBias()
        >>> trainer = types.SimpleNamespace(ckpt_path=None)  # what Lightning passes to setup
        >>> step.setup(trainer, module, "fit")
        >>> module.bias.tolist(), step.applied
        ([0.0], True)
    """

    def __init__(self) -> None:
        self.applied = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:  # noqa: D102
        if self.applied:
            return
        self.applied = True
        if stage == "fit" and trainer.ckpt_path is not None:
            return
        self.apply(trainer, pl_module)

    @abstractmethod
    def apply(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Set the starting point (``trainer.datamodule`` is set up)."""
