"""Start the tracker-fusion energy's base weights from the trackers' training scores."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from lightning_energy.baselines.tracking import tracker_aucs
from lightning_energy.callbacks.init_step import InitStep
from lightning_energy.energies.tracking import TrackFusionEnergy
from lightning_energy.errors import ShapeError


class TrackerWeightsFromAUC(InitStep):
    """Start the base weights at w_k ∝ exp((AUC_k − max AUC) / T), T = ``temperature``.

    AUC_k is tracker k's success AUC averaged over the datamodule's training sequences
    (``datamodule.sequences("train")``), so a tracker that did well on the training data starts
    with more say. Applied once before the first stage (see
    :class:`~lightning_energy.callbacks.InitStep`: not when resuming, and a loaded checkpoint
    wins); ``temperature`` None leaves the weights as the energy was built (uniform by default).
    The temperature is one of the settings the tracking recipes' grid search chooses.

    Args:
        temperature: T > 0, or None to leave the weights as they are.

    Example:
        >>> import types
        >>> from lightning_energy.callbacks import TrackerWeightsFromAUC
        >>> from lightning_energy.datamodules import TrackingDataModule
        >>> from lightning_energy.tasks import TrackerFusionTask
        >>> data = TrackingDataModule(synthetic_sequences=4, synthetic_length=30, window=16,
        ...                           val_fraction=0.25, fold=0, num_folds=4)
        >>> data.setup("fit")
        >>> task = TrackerFusionTask(num_trackers=8)
        >>> trainer = types.SimpleNamespace(datamodule=data, ckpt_path=None)
        >>> TrackerWeightsFromAUC(temperature=0.03).setup(trainer, task, "fit")
        >>> task.energy.log_tracker_weight.detach().max().item()  # the best tracker's: exp(0) = 1
        0.0
    """

    def __init__(self, temperature: float | None = 0.03) -> None:
        if temperature is not None and not temperature > 0:
            raise ValueError(f"Expected `temperature` > 0 or None, got {temperature!r}.")
        super().__init__()
        self.temperature = temperature

    def apply(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if self.temperature is None:
            return
        energy = getattr(pl_module, "energy", None)
        if not isinstance(energy, TrackFusionEnergy):
            raise TypeError(f"TrackerWeightsFromAUC needs a task whose energy is a "
                            f"TrackFusionEnergy, got {type(energy).__name__}.")
        datamodule: Any = getattr(trainer, "datamodule", None)
        if not callable(getattr(datamodule, "sequences", None)):
            raise TypeError(f"TrackerWeightsFromAUC needs a datamodule with sequences(split) "
                            f"(a TrackingDataModule), got {type(datamodule).__name__}.")
        aucs = torch.as_tensor(tracker_aucs(datamodule.sequences("train")))
        if aucs.shape != (energy.num_trackers,):
            raise ShapeError(f"TrackerWeightsFromAUC: the data has {aucs.numel()} trackers, the "
                             f"energy's `num_trackers` is {energy.num_trackers}.")
        # log of exp((AUC − max)/T), formed directly so that small temperatures cannot underflow.
        log_weights = (aucs - aucs.max()) / self.temperature
        target = energy.log_tracker_weight
        with torch.no_grad():
            target.copy_(log_weights.to(dtype=target.dtype, device=target.device))
