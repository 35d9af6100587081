"""With no credentials, a CLI run logs offline to a local wandb run with metrics and config."""

import os
import subprocess
import sys

from lightning_energy.loggers import wandb_credentials_available
from tests.lightning.conftest import REPO, TOY


def test_no_credentials_detected():
    assert not wandb_credentials_available()


def test_offline_run_has_metrics_config_energy_parameters_and_model(tmp_path):
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "lightning_energy", "fit", "--config", TOY,
           "--trainer.default_root_dir", str(tmp_path),
           "--trainer.logger.init_args.save_dir", str(runs),
           "--trainer.logger.init_args.log_model", "true",
           "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
           "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
           "--data.init_args.num_val", "128"]
    # A fresh machine: no credentials, no mode, and no wandb service inherited from this process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(NETRC=str(tmp_path / "no-netrc"), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "logging offline" in result.stderr
    files = list((runs / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    blob = files[0].read_bytes()
    for key in (b"val/loss", b"val/abs_error", b"val/solver/converged", b"train/solver/damping",
                b"energy/bandwidth", b"RobustMeanTask"):
        assert key in blob, key
    # log_model=True offline: the checkpoint is recorded as a model artifact of the run.
    assert b"model-" in blob
    assert b"last.ckpt" in blob
