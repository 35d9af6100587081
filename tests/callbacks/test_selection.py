import math

import pytest
import pytorch_lightning as pl
import torch

from lightning_energy.callbacks import BestOnValidation
from lightning_energy.datamodules import RobustMeanDataModule
from lightning_energy.tasks import RobustMeanTask


class Scripted(pl.Callback):
    """Overwrites the monitored value with a script, so the best step is known in advance."""

    def __init__(self, scores: dict[int, float]) -> None:
        self.scores = scores

    def on_validation_epoch_end(self, trainer, pl_module):
        pl_module.log("val/score", self.scores[trainer.global_step])


def _fit(tmp_path, scores: dict[int, float], include_start: bool = True, mode: str = "max"):
    task = RobustMeanTask()
    selection = BestOnValidation("val/score", mode=mode, include_start=include_start)
    states = {}

    class Remember(pl.Callback):
        def on_validation_end(self, trainer, pl_module):
            states[trainer.global_step] = pl_module.energy.log_bandwidth.detach().clone()

    trainer = pl.Trainer(max_steps=4, val_check_interval=2, check_val_every_n_epoch=None,
                         num_sanity_val_steps=-1 if include_start else 0, limit_val_batches=1,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path,
                         callbacks=[Scripted(scores), selection, Remember()])
    trainer.fit(task, datamodule=RobustMeanDataModule(num_train=64, num_val=8, batch_size=8))
    return task, selection, states


@pytest.mark.parametrize(("scores", "best"), [({0: 0.5, 2: 0.9, 4: 0.7}, 2),
                                              ({0: 0.9, 2: 0.5, 4: 0.9}, 0)])
def test_fit_ends_with_the_best_validated_weights(tmp_path, scores, best):
    """Faulty variants caught: keeping the last weights; a later tie replacing the earliest."""
    task, selection, states = _fit(tmp_path, scores)
    assert selection.best_step == best
    assert [step for step, _ in selection.history] == [0, 2, 4]
    torch.testing.assert_close(task.energy.log_bandwidth.detach(), states[best])
    saved = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=False)
    torch.testing.assert_close(saved["state_dict"]["layer.energy.log_bandwidth"], states[best])


def test_min_mode_and_start_left_out(tmp_path):
    _, selection, _ = _fit(tmp_path, {0: 0.1, 2: 0.5, 4: 0.3}, include_start=False, mode="min")
    assert selection.best_step == 4
    assert [step for step, _ in selection.history] == [2, 4]


def test_include_start_needs_a_full_sanity_check_and_monitor_must_be_logged(tmp_path):
    with pytest.raises(ValueError, match="num_sanity_val_steps"):
        BestOnValidation("val/score").setup(pl.Trainer(logger=False, num_sanity_val_steps=2),
                                            RobustMeanTask(), "fit")
    assert pl.Trainer(logger=False, num_sanity_val_steps=-1).num_sanity_val_steps == math.inf
    with pytest.raises(ValueError, match="mode"):
        BestOnValidation("val/score", mode="largest")  # type: ignore[arg-type]
    trainer = pl.Trainer(max_steps=1, num_sanity_val_steps=0, limit_val_batches=1,
                         val_check_interval=1, check_val_every_n_epoch=None,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path,
                         callbacks=[BestOnValidation("val/absent", include_start=False)])
    data = RobustMeanDataModule(num_train=16, num_val=8, batch_size=8)
    with pytest.raises(KeyError, match="val/absent"):
        trainer.fit(RobustMeanTask(), datamodule=data)
