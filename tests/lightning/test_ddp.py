"""Two CPU processes (DDP, gloo) from the ddp_wandb.yaml overlay: identical energy parameters,
metrics reduced over both ranks, the wandb run under default_root_dir, no noise on stderr.

Catches: ddp_wandb.yaml asking for a GPU (`No supported gpu backend found!` on CPU), a per-rank
masked share logged without reduction over the processes, the wandb run in ./runs whatever
default_root_dir says, and the noise of the issue (Lightning's `sync_dist` advice for every
epoch-level key, the litlogger tip, wandb's `anonymous` warning, torch's LeafSpec deprecation).
"""

import os
import subprocess
import sys

import pytest
import torch

from tests.lightning.conftest import REPO, TOY

DDP_WANDB = str(REPO / "recipes" / "trainer" / "ddp_wandb.yaml")
NOISE = ("sync_dist", "litlogger", "anonymous", "LeafSpec", "Traceback")


@pytest.mark.ddp
def test_two_process_ddp(tmp_path):
    out, root = tmp_path / "probe", tmp_path / "experiment"
    cmd = [sys.executable, "-m", "lightning_energy", "fit", "--config", TOY, "--config", DDP_WANDB,
           "--trainer.devices", "2", "--trainer.max_epochs", "1",
           "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1.0",
           "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
           "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(root),
           "--data.init_args.num_train", "512", "--data.init_args.num_val", "256",
           "--data.init_args.batch_size", "64",
           # Few solver steps, so that some samples are masked and their share is worth checking.
           "--model.init_args.layer.init_args.solver.init_args.solver.init_args.max_steps", "3",
           "--trainer.callbacks+=tests.lightning.ddp_probe.RankProbe",
           f"--trainer.callbacks.out={out}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for noise in NOISE:
        assert noise not in result.stderr, noise
    assert len(list((root / "wandb").glob("offline-run-*"))) == 1
    assert not (tmp_path / "runs").exists()
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


TASK_RECIPES = {
    "pose/synthetic.yaml": ["--data.init_args.synthetic_frames", "64",
                            "--data.init_args.batch_size", "8"],
    "tracking/synthetic.yaml": ["--data.init_args.synthetic_sequences", "10",
                                "--data.init_args.synthetic_length", "48",
                                "--data.init_args.window", "16",
                                "--data.init_args.batch_size", "4"],
    # Pose from pixels, stage 3 (detector and energy together) on rendered synthetic poses, the
    # tiny PPCA model and a tiny detector; no previous stage to start from.
    "pose/end_to_end.yaml": ["--data.init_args.root", "null", "--data.init_args.synthetic_frames",
                             "16", "--data.init_args.batch_size", "2",
                             "--data.init_args.num_workers", "0", "--data.init_args.image_size",
                             "32", "--model.init_args.detector.init_args.channels", "4",
                             "--model.init_args.detector.init_args.depth", "1",
                             "--model.init_args.init_weights", "null"],
}
TINY_PPCA = str(REPO / "recipes" / "pose" / "overlays" / "tiny_ppca.yaml")


@pytest.mark.ddp
@pytest.mark.parametrize("task", sorted(TASK_RECIPES))
def test_task_recipes_train_and_test_on_two_cpu_processes(task, tmp_path):
    """Faulty variants caught: a task recipe pinning a device or chunk size that DDP on CPU
    cannot honour, a rank left waiting in an end-of-run reduction, ranks drifting apart, an
    energy parameter whose gradient has other strides than the parameter (DDP then copies it
    into its bucket at every step and warns)."""
    recipe = str(REPO / "recipes" / task)
    out, root = tmp_path / "probe", tmp_path / "experiment"
    energy = ["--config", TINY_PPCA] if task == "pose/end_to_end.yaml" else []
    common = ["--config", recipe, *energy, "--config", DDP_WANDB, "--trainer.devices", "2",
              "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary",
              "false", "--trainer.default_root_dir", str(root), "--trainer.logger", "false",
              *TASK_RECIPES[task]]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    fit = [sys.executable, "-m", "lightning_energy", "fit", *common, "--trainer.max_steps", "2",
           "--trainer.limit_val_batches", "2",
           "--trainer.callbacks+=tests.lightning.ddp_probe.ParameterProbe",
           f"--trainer.callbacks.out={out}"]
    result = subprocess.run(fit, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Grad strides do not match bucket view strides" not in result.stderr
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    assert ranks[0]["step"] == 2
    for key, value in ranks[0]["params"].items():
        if "running_" in key or "num_batches_tracked" in key:
            continue  # batch-norm statistics: per process, rank 0's broadcast at each forward
        assert torch.equal(value, ranks[1]["params"][key]), key
    test = [sys.executable, "-m", "lightning_energy", "test", *common,
            "--trainer.limit_test_batches", "2",
            "--ckpt_path", str(root / "checkpoints" / "last.ckpt")]
    result = subprocess.run(test, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/" in result.stdout
