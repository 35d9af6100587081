"""With no credentials, a CLI run logs offline to a local wandb run with metrics and config."""

import os
import subprocess
import sys

from lightning_energy.loggers import wandb_credentials_available
from tests.lightning.conftest import REPO, TOY


def test_no_credentials_detected():
    assert not wandb_credentials_available()


def test_offline_run_has_metrics_config_energy_parameters_and_model(tmp_path):
    """Catches: the run in ./runs whatever default_root_dir says, and the resolved config sent
    as one YAML string instead of keys wandb can filter on."""
    root = tmp_path / "experiment"
    cmd = [sys.executable, "-m", "lightning_energy", "fit", "--config", TOY,
           "--trainer.default_root_dir", str(root),
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
    files = list((root / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    assert not (tmp_path / "runs").exists()
    blob = files[0].read_bytes()
    for key in (b"val/loss", b"val/abs_error", b"val/solver/converged", b"train/solver/damping",
                b"val/solver/masked_share", b"energy/bandwidth", b"RobustMeanTask",
                b"model.init_args.layer.init_args.adjoint.init_args.damping"):
        assert key in blob, key
    # log_model=True offline: the checkpoint is recorded as a model artifact of the run.
    assert b"model-" in blob
    assert b"last.ckpt" in blob


def test_predict_reports_and_starts_no_run(tmp_path, capsys):
    """Catches: `predict` printing nothing while creating an empty wandb run."""
    from lightning_energy.cli import main
    from tests.lightning.conftest import CPU_DEBUG

    main(["predict", "--config", TOY, "--config", CPU_DEBUG,
          "--trainer.logger", "lightning_energy.loggers.OfflineFirstWandbLogger",
          "--trainer.default_root_dir", str(tmp_path), "--data.init_args.num_test", "64",
          "--data.init_args.batch_size", "32"])
    out = capsys.readouterr().out
    assert "predict: 64 samples in 2 batches" in out
    assert "BasePredictionWriter" in out
    assert not (tmp_path / "wandb").exists()
