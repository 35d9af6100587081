"""The three end-to-end pose recipes chain as documented: each stage starts from the last one's
checkpoint, and a trained checkpoint evaluates without the earlier stages' files."""

from pathlib import Path

import pytest
import torch

from lightning_energy.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
CPU_DEBUG = str(REPO / "recipes" / "trainer" / "cpu_debug.yaml")
# Synthetic poses, the tiny PPCA model and a tiny detector: wiring, not accuracy.
TINY = ["--data.init_args.root", "null", "--data.init_args.synthetic_frames", "8",
        "--data.init_args.batch_size", "2", "--data.init_args.num_workers", "0",
        "--data.init_args.image_size", "32", "--model.init_args.detector.init_args.channels", "4",
        "--model.init_args.detector.init_args.depth", "1"]
# The built-in tiny PPCA model.
TINY_PPCA = str(REPO / "recipes" / "pose" / "overlays" / "tiny_ppca.yaml")


def _stage(command: str, name: str, root: Path, *extra: str):
    energy = [] if name == "end_to_end_detector.yaml" else ["--config", TINY_PPCA]
    return run_cli([command, "--config", str(REPO / "recipes" / "pose" / name), *energy,
                    "--config", CPU_DEBUG, "--trainer.default_root_dir", str(root), *TINY, *extra])


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_stages_chain_through_their_checkpoints(tmp_path):
    """Catches: a stage that ignores the previous one's weights, or a test command that needs
    the previous stage's files."""
    first = _stage("fit", "end_to_end_detector.yaml", tmp_path / "detector")
    detector_ckpt = tmp_path / "detector" / "checkpoints" / "last.ckpt"
    second = _stage("fit", "end_to_end_staged.yaml", tmp_path / "staged",
                    "--model.init_args.init_weights", str(detector_ckpt))
    trained = first.model.backbone.state_dict()
    for key, value in second.model.backbone.state_dict().items():
        assert torch.equal(value, trained[key]), key  # frozen: still stage 1's detector
    untrained = _stage("test", "end_to_end_staged.yaml", tmp_path / "untrained",
                       "--model.init_args.init_weights", str(detector_ckpt))
    for key, value in untrained.model.backbone.state_dict().items():
        assert torch.equal(value, trained[key]), key  # test without a checkpoint: stage 1's
    staged_ckpt = tmp_path / "staged" / "checkpoints" / "last.ckpt"
    third = _stage("fit", "end_to_end.yaml", tmp_path / "e2e",
                   "--model.init_args.init_weights", str(staged_ckpt))
    assert third.trainer.global_step > 0
    # Fine-tuned from stage 2's detector: its weights move, not only its batch-norm statistics.
    moved = dict(third.model.backbone.named_parameters())
    before = dict(first.model.backbone.named_parameters())
    assert all(not torch.equal(moved[key], value) for key, value in before.items())
    tested = _stage("test", "end_to_end.yaml", tmp_path / "e2e",
                    "--model.init_args.init_weights", str(tmp_path / "absent.ckpt"),
                    "--ckpt_path", str(tmp_path / "e2e" / "checkpoints" / "last.ckpt"))
    metrics = tested.trainer.callback_metrics
    assert {"test/mpjpe", "test/pa_mpjpe", "test/keypoint_error_px", "test/swap_rate"} <= set(
        metrics)


@pytest.mark.parametrize("name", ["end_to_end_detector.yaml", "end_to_end_staged.yaml",
                                  "end_to_end.yaml"])
def test_gpu_overlay_sizes_every_stage(name, tmp_path):
    """Catches: an overlay key one stage's task does not take, or sizes the detector cannot run
    (128-px crops through four 2× poolings)."""
    energy = [] if name == "end_to_end_detector.yaml" else [
        "--config", TINY_PPCA, "--model.init_args.init_weights", "null"]
    cli = run_cli(["--config", str(REPO / "recipes" / "pose" / name), *energy,
                   "--config", str(REPO / "recipes" / "pose" / "gpu" / "end_to_end.yaml"),
                   "--trainer.accelerator", "cpu", "--trainer.logger", "false",
                   "--trainer.default_root_dir", str(tmp_path), "--data.init_args.root", "null",
                   "--data.init_args.synthetic_frames", "2"], run=False)
    assert cli.datamodule.hparams["image_size"] == 128
    assert cli.datamodule.hparams["batch_size"] == 32
    detector = cli.model.backbone
    assert sum(p.numel() for p in detector.parameters()) > 1_000_000
    with torch.no_grad():
        out = detector(torch.rand(1, 3, 128, 128))
    assert tuple(out.keypoints.shape) == (1, 17, 2)
    assert tuple(out.heatmaps[-1].shape[-2:]) == (64, 64)
    assert ((out.keypoints >= 0) & (out.keypoints <= 128)).all()
