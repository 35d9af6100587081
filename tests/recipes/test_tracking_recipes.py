from pathlib import Path

import pytest

from lightning_energy.cli import main, run_cli

RECIPES = Path(__file__).parents[2] / "recipes"
DEBUG = str(RECIPES / "trainer" / "cpu_debug.yaml")
OVERRIDES = ["--data.init_args.synthetic_sequences", "6", "--data.init_args.synthetic_length",
             "40", "--data.init_args.window", "16", "--data.init_args.batch_size", "4"]


def test_synthetic_recipe_fits_and_tests(tmp_path, capsys: pytest.CaptureFixture[str]):
    recipe = str(RECIPES / "tracking" / "synthetic.yaml")
    root = ["--trainer.default_root_dir", str(tmp_path)]
    main(["fit", "--config", recipe, "--config", DEBUG, *root, *OVERRIDES])
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    main(["test", "--config", recipe, "--config", DEBUG, *root, *OVERRIDES,
          "--ckpt_path", str(ckpt)])
    assert "test/success_auc" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["otb100", "uav123"])
def test_real_data_recipes_name_a_missing_root(name: str, tmp_path):
    recipe = str(RECIPES / "tracking" / f"{name}.yaml")
    with pytest.raises(FileNotFoundError, match="No OTB-format tracking data"):
        run_cli(["fit", "--config", recipe, "--config", DEBUG, "--data.init_args.root",
              str(tmp_path / "absent"), "--trainer.default_root_dir", str(tmp_path)])
