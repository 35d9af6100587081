from pathlib import Path

import pytest
import torch

from lightning_energy.cli import run_cli
from lightning_energy.metrics import mpjpe
from studies.pose_offsets import predictions

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "h36m_multiview_sh"
RECIPE = "recipes/pose/h36m_multiview.yaml"
FAST = ["--data.init_args.test_frame_stride", "256", "--model.init_args.energy.init_args.ppca_root",
        str(DATA.parent / "wibergian_ppca")]


@pytest.mark.skipif(not DATA.exists(), reason=f"real data absent ({DATA})")
def test_predicted_frames_score_as_the_trainers_test(tmp_path: Path) -> None:
    """Faulty variant: predictions paired with the wrong batches or frames (the MPJPE of the
    study's poses would then differ from the one ``Trainer.test`` logs)."""
    root = ["--trainer.default_root_dir", str(tmp_path), "--data.init_args.root", str(DATA)]
    pred, target = predictions(RECIPE, None, "S8", [*FAST, *root])
    cli = run_cli(["--config", RECIPE, "--data.init_args.fold", "S8", "--trainer.logger",
                   "false", "--trainer.enable_progress_bar", "false", *FAST, *root], run=False)
    (logged,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    assert pred.shape == target.shape
    assert pred.shape[0] > 10
    torch.testing.assert_close(float(mpjpe(pred, target)), logged["test/mpjpe"], rtol=1e-5,
                               atol=1e-4)
