"""Score the tracker-fusion baselines on the test sequences during ``trainer.test``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from lightning_energy.baselines import tracking as bl
from lightning_energy.datasets.otb import TrackingSequences
from lightning_energy.energies.tracking import default_tracker_weights


class TrackerBaselines(Callback):
    """Log ``test/baseline/<name>/<metric>`` for the fusion baselines, on the test sequences.

    Everything chosen is chosen on the datamodule's training and validation sequences (never the
    test ones): the tracker ranking behind "best single tracker" and the top-k combinations, and
    the trust weights of the agreement-selected tracker (uniform or the AUC weights at one of
    ``temperatures``, whichever selects best there). The hindsight oracles look at the test
    ground truth by definition and are labelled so. Metrics: success AUC, precision at 20 px and
    mean IoU, sequence-averaged (OTB protocol). Needs a datamodule with ``sequences(split)``
    (:class:`~lightning_energy.datamodules.TrackingDataModule`).

    Args:
        top: k of the top-k combinations.
        temperatures: Temperatures of the AUC weights the agreement selector may use (and
            uniform weights).

    Example:
        >>> from lightning_energy.callbacks import TrackerBaselines
        >>> from lightning_energy.datamodules import TrackingDataModule
        >>> data = TrackingDataModule(synthetic_sequences=4, synthetic_length=30, window=16,
        ...                           val_fraction=0.25, fold=0, num_folds=4)
        >>> data.setup("fit")
        >>> fusers = TrackerBaselines(top=3).fusers(data.sequences("train", "val"))
        >>> video = next(iter(data.sequences("test")))
        >>> fusers["median of top-3"](video).shape  # fused boxes (T, 4)
        torch.Size([30, 4])
    """

    def __init__(self, top: int = 5, temperatures: Sequence[float] = (0.03, 0.1)) -> None:
        if top < 1:
            raise ValueError(f"Expected `top` >= 1, got {top}.")
        self.top, self.temperatures = top, tuple(temperatures)

    def fusers(self, known: TrackingSequences) -> dict[str, bl.Fuser]:
        """The baselines, with every choice made on the ``known`` (training) sequences."""
        aucs = bl.tracker_aucs(known)
        chosen = bl.top_k(aucs, self.top)
        best = int(np.argmax(aucs))
        return {
            "best single tracker": bl.single_tracker(best),
            f"median of top-{self.top}": bl.coordinatewise("median", chosen),
            f"mean of top-{self.top}": bl.coordinatewise("mean", chosen),
            "median of all trackers": bl.coordinatewise("median"),
            "mean of all trackers": bl.coordinatewise("mean"),
            "agreement-selected tracker": bl.agreement_selected(self._trust(known, aucs)),
            "oracle: best tracker per sequence (hindsight)": bl.sequence_oracle,
            "oracle: best tracker per frame (hindsight)": bl.oracle,
        }

    def _trust(self, known: TrackingSequences, aucs: np.ndarray) -> np.ndarray | None:
        candidates = [None] + [np.array(default_tracker_weights(list(aucs), t))
                               for t in self.temperatures]
        scores = [bl.score_sequences(bl.agreement_selected(trust), known)["success_auc"]
                  for trust in candidates]
        return candidates[int(np.argmax(scores))]

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        datamodule: Any = getattr(trainer, "datamodule", None)
        if not callable(getattr(datamodule, "sequences", None)):
            raise TypeError(f"TrackerBaselines needs a datamodule with sequences(split) (a "
                            f"TrackingDataModule), got {type(datamodule).__name__}.")
        known = datamodule.sequences("train", "val")
        test = datamodule.sequences("test")
        for name, fuser in self.fusers(known).items():
            scores = bl.score_sequences(fuser, test)
            values = {f"test/baseline/{name}/{k}": torch.tensor(v, dtype=torch.float64)
                      for k, v in scores.items()}
            pl_module.log_dict(values, on_step=False, on_epoch=True, batch_size=len(test))
