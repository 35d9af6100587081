"""The custom-energy tutorial runs as written: its classes are the shipped example's, and its
recipe trains them with the CLI."""

import inspect
import re
from pathlib import Path

import pytest

from lightning_energy.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "custom-energy.md"
RECIPE = REPO / "examples" / "centre.yaml"
QUIET = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false", "--trainer.accelerator", "cpu"]


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples"))  # what PYTHONPATH=examples does
    monkeypatch.chdir(REPO)
    import my_package.energies
    import my_package.tasks

    return my_package


def test_page_shows_the_shipped_classes(example):
    """Catches: the page's code and the importable example drifting apart."""
    page = PAGE.read_text()
    for cls in (example.energies.SoftCentre, example.tasks.CentreTask):
        assert inspect.getsource(cls).strip() in page, f"{cls.__name__} differs from the page"
    shown = re.search(r"```yaml\n(# examples/centre\.yaml.*?)```", page, re.S)
    assert shown is not None
    assert shown.group(1) == RECIPE.read_text()


def test_recipe_trains_the_energy(example, tmp_path):
    """Catches: a recipe naming a class that does not exist, or training that does not learn."""
    common = ["--config", str(RECIPE), "--trainer.default_root_dir", str(tmp_path), *QUIET]
    start = run_cli(["validate", *common]).trainer.callback_metrics["val/loss"].item()
    fitted = run_cli(["fit", *common, "--trainer.max_epochs", "2"])
    assert fitted.trainer.global_step == 16  # 512 clouds / 64 per batch, 2 epochs
    assert fitted.trainer.callback_metrics["val/loss"].item() < 0.5 * start
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
