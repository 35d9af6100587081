"""With no credentials, runs log offline to a local wandb run holding metrics and config."""

import logging

from lightning_energy.cli import run_cli
from lightning_energy.loggers import OfflineFirstWandbLogger, wandb_credentials_available
from tests.lightning.conftest import TOY


def test_no_credentials_detected():
    assert not wandb_credentials_available()


def test_offline_run_has_metrics_config_and_energy_parameters(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        cli = run_cli(["fit", "--config", TOY, "--trainer.default_root_dir", str(tmp_path),
                       "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
                       "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
                       "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar",
                       "false", "--data.init_args.num_val", "128"])
    logger = cli.trainer.logger
    assert isinstance(logger, OfflineFirstWandbLogger)
    assert "logging offline" in caplog.text
    import wandb

    wandb.finish()  # the process exit does this for a CLI run
    runs = list((tmp_path / "runs" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    blob = runs[0].read_bytes()
    for key in (b"val/loss", b"val/abs_error", b"val/solver/converged", b"train/solver/damping",
                b"energy/bandwidth", b"RobustMeanTask"):
        assert key in blob, key
