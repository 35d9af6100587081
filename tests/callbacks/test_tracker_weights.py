import pytest
import pytorch_lightning as pl
import torch

import lightning_energy as le
from lightning_energy.baselines.tracking import tracker_aucs
from lightning_energy.callbacks import TrackerWeightsFromAUC
from lightning_energy.datamodules import TrackingDataModule
from lightning_energy.energies.tracking import TrackFusionEnergy
from lightning_energy.errors import ShapeError
from lightning_energy.linalg import Banded
from lightning_energy.solvers import BandedIRLS
from lightning_energy.tasks import TrackerFusionTask


def _datamodule(trackers: int = 4) -> TrackingDataModule:
    dm = TrackingDataModule(window=16, batch_size=6, synthetic_sequences=8, synthetic_length=64,
                            synthetic_trackers=trackers, fold=0, num_folds=4, val_fraction=0.2)
    dm.setup("fit")
    return dm


def _task(trackers: int = 4) -> TrackerFusionTask:
    layer = le.EnergyLayer(TrackFusionEnergy(trackers), BandedIRLS(max_steps=50, tol=1e-6),
                           le.ImplicitAdjoint(1e-2, linear_solver=Banded()))
    return TrackerFusionTask(layer, energy_lr=0.05)


class Probe(pl.Callback):
    """Records the base weights when training starts (after every on_fit_start and InitStep)."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def on_train_start(self, trainer, pl_module):
        self.seen.append(pl_module.energy.log_tracker_weight.detach().clone())


def _trainer(*callbacks: pl.Callback, steps: int = 1) -> pl.Trainer:
    return pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      limit_val_batches=0, callbacks=list(callbacks))


def test_base_weights_start_from_the_training_aucs_unless_resuming(tmp_path):
    """Faulty variants caught: AUCs of the wrong split, a sign flip, re-applying on resume."""
    dm = _datamodule()
    aucs = tracker_aucs(dm.sequences("train"))
    expected = torch.tensor((aucs - aucs.max()) / 0.05, dtype=torch.float32)
    assert float(expected.min()) < -0.5  # the simulated trackers differ, so the check can fail
    probe = Probe()
    task = _task()
    trainer = _trainer(TrackerWeightsFromAUC(0.05), probe)
    trainer.fit(task, datamodule=dm)
    torch.testing.assert_close(probe.seen[-1], expected, atol=1e-5, rtol=0)
    # Resuming keeps the checkpoint's weights.
    with torch.no_grad():
        task.energy.log_tracker_weight.fill_(0.25)
    trainer.save_checkpoint(tmp_path / "resume.ckpt")
    _trainer(TrackerWeightsFromAUC(0.05), probe, steps=2).fit(
        _task(), datamodule=dm, ckpt_path=tmp_path / "resume.ckpt")
    torch.testing.assert_close(probe.seen[-1], torch.full_like(expected, 0.25))


def test_none_leaves_the_weights_and_bad_arguments_are_named():
    dm, probe = _datamodule(), Probe()
    _trainer(TrackerWeightsFromAUC(None), probe).fit(_task(), datamodule=dm)
    torch.testing.assert_close(probe.seen[-1], torch.zeros(4))
    with pytest.raises(ValueError, match="temperature"):
        TrackerWeightsFromAUC(0.0)
    with pytest.raises(ShapeError, match="num_trackers"):
        _trainer(TrackerWeightsFromAUC(0.05)).fit(_task(trackers=3), datamodule=dm)
