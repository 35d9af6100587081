"""Every recipe in recipes/ runs for a few steps on tiny data, so none can rot."""

from pathlib import Path

import pytest

from lightning_energy.cli import run_cli
from lightning_energy.errors import DatasetNotFoundError

REPO = Path(__file__).resolve().parents[2]
# Overlays (trainer/, cv/, gpu/, overlays/) are checked by the tests that combine them with a
# recipe.
RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml")
                 if p.parent.name not in ("trainer", "cv", "gpu", "overlays"))
CPU_DEBUG = str(REPO / "recipes" / "trainer" / "cpu_debug.yaml")
# Real-data recipes run on a slice of their data: the recipe test checks wiring, not accuracy.
TINY = {
    "h36m_multiview.yaml": ["--data.init_args.max_frames_per_subject", "32"],
    "h36m_sequence.yaml": ["--data.init_args.actions", "[Walking]",
                           "--data.init_args.window", "2", "--data.init_args.eval_overlap", "0",
                           "--data.init_args.train_window_step", "1",
                           "--model.init_args.energy.init_args.num_bases", "4",
                           "--model.init_args.solver.init_args.max_steps", "5"],
    # The end-to-end stages start from the previous stage's checkpoint, which a recipe test has
    # not got (tests/recipes/test_end_to_end_recipes.py chains them); tiny crops and detector.
    **{name: ["--data.init_args.max_frames_per_subject", "4", "--data.init_args.num_workers", "0",
              "--data.init_args.batch_size", "2",
              "--model.init_args.detector.init_args.channels", "8",
              *([] if name == "end_to_end_detector.yaml"
                else ["--model.init_args.init_weights", "null"])]
       for name in ("end_to_end_detector.yaml", "end_to_end_staged.yaml", "end_to_end.yaml")},
}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_recipe_fits_and_tests(recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # recipes' default data roots are relative to the repository
    common = ["--config", str(recipe), "--config", CPU_DEBUG,
              "--trainer.default_root_dir", str(tmp_path), *TINY.get(recipe.name, [])]
    try:
        cli = run_cli(["fit", *common])
    except DatasetNotFoundError as err:
        pytest.skip(f"real data absent: {err}")
    assert cli.trainer.global_step > 0
    ckpt = str(tmp_path / "checkpoints" / "last.ckpt")
    tested = run_cli(["test", *common, "--ckpt_path", ckpt])
    assert any(key.startswith("test/") for key in tested.trainer.callback_metrics)
    predicted = run_cli(["predict", *common, "--ckpt_path", ckpt])
    assert predicted.trainer.predict_loop.predictions


@pytest.mark.parametrize("overlay", sorted((REPO / "recipes" / "trainer").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_trainer_overlays_instantiate(overlay, tmp_path):
    # Run on this CPU whatever the overlay asks for; everything else comes from the overlay.
    cli = run_cli(["--config", str(REPO / "recipes" / "toy" / "robust_mean.yaml"),
                   "--config", str(overlay), "--trainer.accelerator", "cpu",
                   "--trainer.devices", "1", "--trainer.strategy", "auto",
                   "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert cli.trainer.max_epochs >= 1
    if overlay.name == "ddp_wandb.yaml":
        assert cli.trainer.logger.__class__.__name__ == "OfflineFirstWandbLogger"
