"""BaselineReport's "start of training" row is where training started, after every start step."""

import math

import pytorch_lightning as pl
import torch

from lightning_energy.callbacks import BaselineReport
from lightning_energy.cli import run_cli
from tests.lightning.conftest import CPU_DEBUG, TOY


class _StartElsewhere(pl.Callback):
    """An on_fit_start that moves the weights (as an init step may), then measures them."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with torch.no_grad():
            pl_module.energy.log_bandwidth.fill_(math.log(4.0))
        self.at_start = BaselineReport().evaluate(trainer, pl_module)


def test_report_measures_after_every_start_step(tmp_path):
    """Catches: measuring "before" at BaselineReport.on_fit_start, which runs before a later
    callback's on_fit_start and so credited training with what the start step changed."""
    cli = run_cli(["--config", TOY, "--config", CPU_DEBUG,
                   "--trainer.default_root_dir", str(tmp_path)], run=False)
    start = _StartElsewhere()
    cli.trainer.callbacks.append(start)  # after BaselineReport, like a recipe's callbacks
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    report = next(cb for cb in cli.trainer.callbacks if isinstance(cb, BaselineReport))
    assert set(report.before) == {"energy", "sample median", "sample mean"}
    assert report.before == start.at_start
