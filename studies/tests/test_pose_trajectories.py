import json
from pathlib import Path

import pytest

from studies.assumptions.pose_trajectories import main

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "h36m_multiview_sh"


@pytest.mark.skipif(not DATA.exists(), reason=f"real data absent ({DATA})")
def test_two_steps_of_one_seed_are_plotted_from_the_recipes_own_logs(tmp_path: Path) -> None:
    """Faulty variant: a panel read from the wrong logged column (the recipe starts the kernel
    scale at 2.0, the pose prior at 1.0 and the scale prior at 10; one Adam step on their logs
    moves each by about 1%)."""
    main(["--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), "--seeds", "0",
          "--workers", "1", "--data.init_args.root", str(DATA),
          "--model.init_args.energy.init_args.ppca_root", str(DATA.parent / "wibergian_ppca"),
          "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
          "--trainer.log_every_n_steps", "1"])
    result = json.loads((tmp_path / "out" / "pose_trajectories.json").read_text())
    for title, start in (("kernel scale δ (× 10 px)", 2.0), ("pose prior weight", 1.0),
                         ("scale prior weight", 10.0)):
        (values,) = result[title]
        assert values["first"] == pytest.approx(start, rel=0.03), title
    assert (tmp_path / "out" / "pose_trajectories.png").stat().st_size > 10_000
    assert "Kernel scale δ" in (tmp_path / "out" / "pose_trajectories.md").read_text()
