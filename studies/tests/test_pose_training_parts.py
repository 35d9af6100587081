"""Parts 4 and 5 of the study on the real tasks: the backward rules reach the recipe's layer,
the grids are what the page says, and the drivers run end to end on two steps."""

import importlib
import json
from pathlib import Path

import pytest

from lightning_energy.adjoints import ImplicitAdjoint, UnrolledAdjoint
from lightning_energy.cli import run_cli
from studies.assumptions import (
    every_part,
    grid_study,
    pose_grid,
    pose_stability,
    tracking_grid,
    tracking_stability,
)
from studies.assumptions.pose_trajectories import RECIPE

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "h36m_multiview_sh"
PATHS = ["--data.init_args.root", str(DATA),
         "--model.init_args.energy.init_args.ppca_root", str(DATA.parent / "wibergian_ppca")]
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"real data absent ({DATA})")
OTB = DATA.parent / "otb100_tracker_fusion"
needs_otb = pytest.mark.skipif(not OTB.exists(), reason=f"real data absent ({OTB})")


@needs_data
@pytest.mark.parametrize(("setting", "kind", "damping"), [
    ("λ = 0", ImplicitAdjoint, 0.0), ("λ = 1e-2 (recipe)", ImplicitAdjoint, 0.01),
    ("λ = 1", ImplicitAdjoint, 1.0), ("λ = auto", ImplicitAdjoint, "auto"),
    ("unrolled", UnrolledAdjoint, None)])
def test_each_setting_builds_the_recipe_with_its_backward_rule(setting, kind, damping):
    cli = run_cli(["--config", RECIPE, *PATHS, *pose_stability.SETTINGS[setting],
                   "--trainer.logger", "false"], run=False)
    adjoint = cli.model.layer.adjoint
    assert type(adjoint) is kind
    if damping is not None:
        assert adjoint.damping == damping
        assert adjoint.hessian == "exact"


def test_grid_is_log_spaced_over_the_stated_ranges(tmp_path):
    spec = json.loads(grid_study.grid_file(pose_grid.TASK, 5, tmp_path).read_text())
    prior = spec["grid"]["model.init_args.energy.init_args.prior_weight"]
    kernel = spec["grid"]["model.init_args.energy.init_args.kernel_scale"]
    assert prior == pytest.approx([0.1, 0.3162, 1.0, 3.162, 10.0], rel=1e-3)
    assert kernel == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0], rel=1e-3)
    assert (spec["monitor"], spec["mode"], spec["split"]) == ("val/mpjpe", "min", "val")
    spec = json.loads(grid_study.grid_file(tracking_grid.TASK, 3, tmp_path).read_text())
    assert spec["grid"]["callbacks.TrackerWeightsFromAUC.temperature"] == pytest.approx(
        [0.01, 0.1, 1.0])
    assert (spec["monitor"], spec["mode"], spec["split"]) == ("val/success_auc", "max", "train")


def _row(kind, size, seed, auc):
    return {"kind": kind, "size": size, "seed": seed, "success_auc": auc,
            "precision_20px": auc, "points": size * size if size else None, "seconds": 10.0,
            "values": {"δ": 0.8 if kind == "grid" else 0.2, "T": 0.1} if kind == "grid"
            else {"δ": 0.2}}


def test_grid_summary_pairs_grids_and_learned_runs_by_split():
    """Faulty variant: a grid compared with another split's learned run, or a verdict that
    ignores which way the metric improves."""
    task = tracking_grid.TASK
    rows = [_row("grid", 3, 0, 0.70), _row("grid", 3, 1, 0.60),
            _row("learned", 0, 0, 0.72), _row("learned", 0, 1, 0.61)]
    summary = grid_study.summarise(task, rows)
    assert summary["grids"]["3"]["learned_minus_grid"] == pytest.approx([0.02, 0.01])
    assert summary["learned"]["success_auc"] == pytest.approx([0.665, 0.055])
    (line, ended) = grid_study.answer(task, summary)
    assert "grid 3×3** (9 points" in line
    assert "matches the learned 0.665 ± 0.055" in line
    assert "+0.020, +0.010 (mean +0.015)" in line
    assert "choice of δ fell on the edge" in line  # δ = 0.8 is the range's end, T is not
    assert ended == "- The learned runs' tested states had δ = 0.2–0.2 (started at 0.15)."
    worse = grid_study.summarise(task, [_row("grid", 3, 0, 0.5), _row("learned", 0, 0, 0.72),
                                        _row("learned", 0, 1, 0.71)])
    assert "does not match the learned" in grid_study.answer(task, worse)[0]


@needs_otb
def test_tracking_grid_learned_runs_learn_the_energy_weights_only():
    cli = run_cli([*[a for r in tracking_grid.TASK.recipes for a in ("--config", r)],
                   *tracking_grid.TASK.learn, f"--{tracking_grid.TASK.axes[0].key}", "0.3",
                   "--trainer.logger", "false"], run=False)
    energy = cli.model.layer.energy
    assert cli.model.backbone is None
    assert float(energy.robust.log_scale.exp()) == pytest.approx(0.3)
    learned = {name for name, p in energy.named_parameters() if p.requires_grad}
    assert learned == {"log_alpha", "log_beta", "log_tracker_weight", "robust.log_scale"}
    assert any(name.endswith(tracking_grid.TASK.axes[0].state)
               for name, _ in cli.model.named_parameters())


@needs_data
def test_stability_runs_log_loss_gradient_norm_and_masked_share(tmp_path):
    """Faulty variant: the damping override not reaching the layer (λ = 0 and λ = 1 then give
    the same gradient at the first step, from the same seed and batch)."""
    result = pose_stability.main([
        "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), "--seeds", "0",
        "--settings", "λ = 0", "λ = 1", "--workers", "1", *PATHS, "--trainer.max_steps", "2",
        "--trainer.val_check_interval", "2", "--data.init_args.val_frame_stride", "512"])
    runs = {r["setting"]: r["curves"] for r in result["runs"]}
    for curves in runs.values():
        assert curves["loss"]["step"] == [0, 1]
        assert all(0 < g < float("inf") for g in curves["grad_norm"]["value"])
        assert all(0 <= s <= 1 for s in curves["masked_share"]["value"])
        assert curves["val"]["mpjpe"] > 0
    first = [runs[s]["grad_norm"]["value"][0] for s in ("λ = 0", "λ = 1")]
    assert abs(first[0] - first[1]) > 1e-3 * first[0]
    assert runs["λ = 0"]["loss"]["value"][0] == pytest.approx(runs["λ = 1"]["loss"]["value"][0])
    assert "| λ = 1 |" in (tmp_path / "out" / "pose_stability.md").read_text()


@needs_data
def test_grid_and_learned_runs_are_tested_on_the_held_out_subject(tmp_path):
    result = pose_grid.main([
        "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), "--grids", "2",
        "--seeds", "0", "--workers", "2", *PATHS, "--trainer.max_steps", "2",
        "--trainer.val_check_interval", "2", "--data.init_args.val_frame_stride", "512",
        "--data.init_args.test_frame_stride", "512"])
    rows = {r["kind"]: r for r in result["summary"]["rows"]}
    assert len(result["summary"]["rows"]) == 2
    assert rows["grid"]["points"] == 4
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("grid2-*/*.json")]
    best = min(record["grid"], key=lambda row: row["score"])["point"]
    assert rows["grid"]["values"] == {
        "λ_prior": best["model.init_args.energy.init_args.prior_weight"],
        "δ": best["model.init_args.energy.init_args.kernel_scale"]}
    assert len({row["score"] for row in record["grid"]}) == 4  # the points were scored apart
    for row in rows.values():
        assert row["mpjpe"] > 0
        assert row["seconds"] > 0
    # Two Adam steps at rate 1e-2 move the learned log-weights by about 0.02 from the recipe's.
    values = rows["learned"]["values"]
    assert set(values) == {"λ_prior", "δ"}
    for name, start in (("λ_prior", 1.0), ("δ", 2.0)):
        assert 0.9 < values[name] / start < 1.1
        assert values[name] != start
    page = (tmp_path / "out" / "pose_grid.md").read_text()
    assert "- **grid 2×2** (4 points" in page


@pytest.mark.parametrize("name", every_part.PARTS)
def test_every_part_driver_takes_out(name, capsys):
    """Catches: a driver in the one-command list that does not exist or has no --out."""
    module = importlib.import_module(name)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--out", "unused", "--help"])
    assert exit_info.value.code == 0
    assert "--out" in capsys.readouterr().out


@needs_otb
@pytest.mark.parametrize(("setting", "kind", "damping"), [
    ("λ = 0", ImplicitAdjoint, 0.0), ("λ = 1e-2 (recipe)", ImplicitAdjoint, 0.01),
    ("λ = 1", ImplicitAdjoint, 1.0), ("unrolled", UnrolledAdjoint, None)])
def test_each_tracking_setting_builds_the_recipe_with_its_backward_rule(setting, kind, damping):
    cli = run_cli([item for path in tracking_stability.TASK.recipes for item in ("--config", path)]
                  + ["--data.init_args.root", str(OTB), *tracking_stability.SETTINGS[setting],
                     "--trainer.logger", "false"], run=False)
    adjoint = cli.model.layer.adjoint
    assert type(adjoint) is kind
    if damping is not None:
        assert adjoint.damping == damping
        assert type(adjoint.linear_solver).__name__ == "Banded"


@needs_otb
def test_tracking_stability_runs_on_two_steps(tmp_path):
    """Faulty variant: the damping override not reaching the layer (λ = 0 and λ = 1 then give
    the same gradient at the first step, from the same seed and batch)."""
    result = tracking_stability.main([
        "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), "--seeds", "0",
        "--settings", "λ = 0", "λ = 1", "--workers", "1", "--data.init_args.root", str(OTB),
        "--trainer.max_steps", "2", "--trainer.val_check_interval", "2"])
    runs = {r["setting"]: r["curves"] for r in result["runs"]}
    for curves in runs.values():
        assert curves["loss"]["step"] == [0, 1]
        assert all(0 < g < float("inf") for g in curves["grad_norm"]["value"])
        assert 0 < curves["val"]["success_auc"] <= 1
    first = [runs[s]["grad_norm"]["value"][0] for s in ("λ = 0", "λ = 1")]
    assert abs(first[0] - first[1]) > 1e-3 * first[0]
    text = (tmp_path / "out" / "tracking_stability.md").read_text()
    assert "| λ = 1 |" in text
    assert "success AUC" in text
