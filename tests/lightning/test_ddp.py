"""Two CPU processes (DDP, gloo): identical energy parameters, metrics reduced over both ranks.

Catches (masked share): a per-rank share logged without reduction over the processes.
"""

import os
import subprocess
import sys

import pytest
import torch

from tests.lightning.conftest import CPU_DEBUG, REPO, TOY


@pytest.mark.ddp
def test_two_process_ddp(tmp_path):
    out = tmp_path / "probe"
    cmd = [sys.executable, "-m", "lightning_energy", "fit", "--config", TOY, "--config", CPU_DEBUG,
           "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu",
           "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1.0",
           "--trainer.default_root_dir", str(tmp_path),
           "--data.init_args.num_train", "512", "--data.init_args.num_val", "256",
           "--data.init_args.batch_size", "64",
           # Few solver steps, so that some samples are masked and their share is worth checking.
           "--model.init_args.layer.init_args.solver.init_args.solver.init_args.max_steps", "3",
           "--trainer.callbacks+=tests.lightning.ddp_probe.RankProbe",
           f"--trainer.callbacks.out={out}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    for key, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][key]), key
    # Each rank saw half the validation set; the logged metric is the mean over all of it.
    assert torch.allclose(ranks[0]["val_abs_error"], ranks[1]["val_abs_error"])
    assert torch.allclose(ranks[0]["val_abs_error"].double(), ranks[0]["reference"].double(),
                          atol=1e-5)
    # The masked share too is over the whole set (each rank alone would see its half's share).
    assert 0 < float(ranks[0]["reference_masked"]) < 1
    for rank in ranks:
        assert torch.allclose(rank["val_masked_share"].double(), ranks[0]["reference_masked"],
                              atol=1e-6)
