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
    with pytest.raises(KeyError, match="val/absent") as info:
        trainer.fit(RobustMeanTask(), datamodule=data)
    assert "val/loss" in str(info.value)  # what was logged, to choose from


def test_min_mode_tie_keeps_the_earliest(tmp_path):
    """Faulty variant: in min mode an equal later score replaces the earliest best."""
    _, selection, _ = _fit(tmp_path, {0: 0.5, 2: 0.2, 4: 0.2}, mode="min")
    assert selection.best_step == 2


def test_best_ckpt_holds_weights_only_and_fast_dev_run_writes_none(tmp_path):
    """Faulty variants: best.ckpt saved with optimizer state; a fast_dev_run leaves a file."""
    _fit(tmp_path / "fit", {0: 0.5, 2: 0.9, 4: 0.7})
    saved = torch.load(tmp_path / "fit" / "checkpoints" / "best.ckpt", weights_only=False)
    assert "optimizer_states" not in saved
    trainer = pl.Trainer(fast_dev_run=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path / "dev",
                         callbacks=[Scripted({0: 0.5, 1: 0.6}),
                                    BestOnValidation("val/score", include_start=False)])
    trainer.fit(RobustMeanTask(), datamodule=RobustMeanDataModule(num_train=16, num_val=8,
                                                                   batch_size=8))
    assert trainer.callbacks[1].best_step == 1
    assert not (tmp_path / "dev" / "checkpoints").exists()


def test_without_any_validation_fit_keeps_its_weights(tmp_path):
    """Faulty variant: the 'no best yet' state is not None (on_fit_end loads nothing real)."""
    selection = BestOnValidation("val/score", include_start=False)
    assert (selection.best_step, selection.history) == (None, [])
    task = RobustMeanTask()
    trainer = pl.Trainer(max_steps=1, limit_val_batches=0, logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, callbacks=[selection])
    trainer.fit(task, datamodule=RobustMeanDataModule(num_train=16, num_val=8, batch_size=8))
    assert selection.best_step is None
    assert not (tmp_path / "checkpoints" / "best.ckpt").exists()


def test_state_dict_round_trip_restores_the_choice(tmp_path):
    """Faulty variant: `state_dict`/`load_state_dict` lose or rename a field (resume forgets)."""
    task, selection, states = _fit(tmp_path, {0: 0.5, 2: 0.9, 4: 0.7})
    state = selection.state_dict()
    assert set(state) == {"best_score", "best_step", "history", "best_state"}
    restored = BestOnValidation("val/score")
    restored.load_state_dict({**state, "history": [(float(s), str(v)) for s, v in
                                                   state["history"]]})
    assert (restored.best_score, restored.best_step) == (selection.best_score, 2)
    assert restored.history == selection.history
    assert all(isinstance(s, int) and isinstance(v, float) for s, v in restored.history)
    with torch.no_grad():
        task.energy.log_bandwidth.add_(1.0)
    restored.on_fit_end(pl.Trainer(fast_dev_run=True, logger=False), task)
    torch.testing.assert_close(task.energy.log_bandwidth.detach(), states[2])
