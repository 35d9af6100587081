import json
from pathlib import Path

import pytest

from studies.assumptions.tracking_trajectories import main

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "otb100_tracker_fusion"


@pytest.mark.skipif(not DATA.exists(), reason=f"real data absent ({DATA})")
def test_two_steps_of_one_seed_are_plotted_from_the_recipes_own_logs(tmp_path: Path) -> None:
    """Faulty variant: a panel read from the wrong logged column or entry (the recipe starts α
    at (1, 10), β at (1, 1) and δ at 0.15; one Adam step at rate 0.02 moves each by ~2%)."""
    main(["--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), "--seeds", "0",
          "--workers", "1", "--data.init_args.root", str(DATA), "--trainer.max_steps", "2",
          "--trainer.val_check_interval", "2", "--trainer.log_every_n_steps", "1"])
    result = json.loads((tmp_path / "out" / "tracking_trajectories.json").read_text())
    for title, start in (("α, centre (first-order smoothness)", 1.0), ("α, size", 10.0),
                         ("β, centre (second-order smoothness)", 1.0), ("β, size", 1.0),
                         ("Cauchy kernel scale δ", 0.15)):
        (values,) = result[title]
        assert values["first"] == pytest.approx(start, rel=0.05), title
    assert (tmp_path / "out" / "tracking_trajectories.png").stat().st_size > 10_000
    assert "Cauchy kernel scale δ" in (tmp_path / "out" / "tracking_trajectories.md").read_text()
