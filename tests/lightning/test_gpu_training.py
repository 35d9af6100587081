"""A Lightning fit on one CUDA device trains the toy energy (skipped without a GPU)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from lightning_energy.cli import run_cli
from tests.lightning.conftest import TOY


class _Devices(pl.Callback):
    """Records where the energy's parameters live during training (teardown moves them back)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen |= {p.device.type for p in pl_module.parameters()}


@pytest.mark.gpu
def test_toy_recipe_fits_on_cuda(tmp_path) -> None:
    devices = _Devices()
    cli = run_cli(["--config", TOY, "--trainer.default_root_dir", str(tmp_path),
                   "--trainer.logger", "false", "--trainer.max_epochs", "1",
                   "--trainer.accelerator", "gpu", "--trainer.devices", "1",
                   "--trainer.enable_progress_bar", "false",
                   "--data.init_args.num_train", "256", "--data.init_args.num_val", "64"],
                  run=False)
    cli.trainer.callbacks.append(devices)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert devices.seen == {"cuda"}
    bandwidth = cli.model.energy.bandwidth
    assert torch.isfinite(bandwidth).all()
    assert float(bandwidth) != 1.0  # σ was learned on the GPU
    assert cli.trainer.logged_metrics, "no metrics were logged"
    assert all(torch.isfinite(v).all() for v in cli.trainer.logged_metrics.values())
