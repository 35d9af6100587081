"""Checkpoints and resuming: a killed run resumed with ``--ckpt_path last`` ends exactly where an
uninterrupted run ends, on one CPU process and under 2-process CPU DDP; ``last.ckpt`` is the only
"last" file; nothing is written under fast_dev_run; a missing checkpoint is an error."""

import os
import subprocess
import sys

import pytest
import torch

from lightning_energy.cli import run_cli
from lightning_energy.errors import CheckpointNotFoundError
from tests.lightning.conftest import CPU_DEBUG, REPO, TOY
from tests.lightning.probes import Interrupted

# 3 optimizer steps per epoch, 3 epochs; the kill falls in the middle of the second epoch. Two
# validation batches, so that each DDP rank has one (BaselineReport waits for every rank).
SMALL = ["--trainer.limit_train_batches", "3", "--data.init_args.num_train", "512",
         "--data.init_args.num_val", "128", "--data.init_args.batch_size", "64"]
EPOCHS, KILL_AT, LAST_SAVED = 3, 5, 3
PROBE = "--trainer.callbacks+=tests.lightning.probes.StateProbe"
INTERRUPT = "--trainer.callbacks+=tests.lightning.probes.Interrupt"


def args(root, *extra):
    return ["fit", "--config", TOY, "--config", CPU_DEBUG, "--trainer.default_root_dir",
            str(root), "--trainer.max_epochs", str(EPOCHS), *SMALL, *extra]


def probe(out):
    return [PROBE, f"--trainer.callbacks.out={out}"]


def interrupt():
    return [INTERRUPT, f"--trainer.callbacks.at_step={KILL_AT}"]


def assert_state_equal(a, b, what):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for key in a:
            assert_state_equal(a[key], b[key], f"{what}.{key}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), what
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_state_equal(x, y, f"{what}[{i}]")
    else:
        assert a == b, what


def assert_resumed_exactly(straight, resumed, checkpoint, rank=0):
    """The resumed fit started from the checkpoint and ended bit-identical to the straight fit."""
    start = torch.load(resumed / f"start{rank}.pt", weights_only=False)
    assert (start["global_step"], start["epoch"]) == (LAST_SAVED, LAST_SAVED // 3)
    assert start["global_step"] == checkpoint["global_step"]
    assert_state_equal(start["optimizer"]["state"], checkpoint["optimizer_states"][0]["state"],
                       "optimizer state at the start of the resumed fit")
    assert int(start["optimizer"]["state"][0]["step"]) == LAST_SAVED
    end_a = torch.load(straight / f"end{rank}.pt", weights_only=False)
    end_b = torch.load(resumed / f"end{rank}.pt", weights_only=False)
    assert end_a["global_step"] == end_b["global_step"] == EPOCHS * 3
    for key in ("params", "optimizer", "metrics"):
        assert_state_equal(end_a[key], end_b[key], key)
    assert "val/abs_error" in end_a["metrics"]


def test_killed_run_resumes_exactly(tmp_path):
    """Catches: `--ckpt_path last` picking the newest file (here the one-batch last-v1.ckpt a
    fast_dev_run between kill and resume used to write: the start probe then reads step 1), not
    loading the checkpoint (step 0), or losing optimizer or metric state across the restart."""
    run_cli(args(tmp_path / "a", *probe(tmp_path / "pa")))
    with pytest.raises(Interrupted):
        run_cli(args(tmp_path / "b", *interrupt()))
    run_cli(args(tmp_path / "b", "--trainer.fast_dev_run", "1"))  # a quick check before resuming
    checkpoint = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=False)
    # With a logger on, the checkpoint folder must still be found (wandb gives each run a new id).
    logger = ["--trainer.logger", "lightning_energy.loggers.OfflineFirstWandbLogger",
              "--trainer.logger.save_dir", str(tmp_path / "runs")]
    run_cli(args(tmp_path / "b", "--ckpt_path", "last", *logger, *probe(tmp_path / "pb")))
    assert_resumed_exactly(tmp_path / "pa", tmp_path / "pb", checkpoint)


@pytest.mark.ddp
def test_killed_ddp_run_resumes_exactly(tmp_path):
    """The same under 2-process CPU DDP (gloo), every rank checked. Catches: a rank that does not
    restore (its start probe reads step 0) or that diverges after the restart."""
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def fit(*extra):
        cmd = [sys.executable, "-m", "lightning_energy", *args(*extra), *ddp]
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)

    straight = fit(tmp_path / "a", *probe(tmp_path / "pa"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = fit(tmp_path / "b", *interrupt())
    assert killed.returncode != 0
    assert "interrupted after step" in killed.stderr
    checkpoint = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=False)
    resumed = fit(tmp_path / "b", "--ckpt_path", "last", *probe(tmp_path / "pb"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for rank in (0, 1):
        assert torch.load(tmp_path / "pb" / f"start{rank}.pt")["world_size"] == 2
        assert_resumed_exactly(tmp_path / "pa", tmp_path / "pb", checkpoint, rank)


def test_last_checkpoint_is_overwritten_never_versioned(tmp_path):
    """Catches: Lightning's version counter (a rerun adding last-v1.ckpt, which `--ckpt_path
    last` then prefers as the newest file)."""
    for _ in range(2):
        run_cli(args(tmp_path, "--trainer.max_epochs", "1"))
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["epoch=0-step=3.ckpt", "last.ckpt"]


def test_fast_dev_run_writes_no_checkpoint(tmp_path):
    """Catches: ModelCheckpoint.on_train_end saving last.ckpt under fast_dev_run."""
    run_cli(args(tmp_path, "--trainer.fast_dev_run", "1"))
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_ckpt_path_last_without_checkpoint_is_an_error(tmp_path):
    """Catches: Lightning's warning-and-train-from-scratch when there is nothing to resume."""
    with pytest.raises(CheckpointNotFoundError, match=str(tmp_path / "checkpoints")):
        run_cli(args(tmp_path, "--ckpt_path", "last"))
    assert not (tmp_path / "checkpoints").exists()
