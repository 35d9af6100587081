"""The toy recipe trains: the learned energy beats the sample median and its untrained self."""

from lightning_energy.callbacks import BaselineReport
from lightning_energy.cli import run_cli
from tests.lightning.conftest import TOY


def test_toy_recipe_learns(tmp_path):
    cli = run_cli(["fit", "--config", TOY, "--trainer.default_root_dir", str(tmp_path),
                   "--trainer.logger", "false", "--trainer.max_epochs", "2",
                   "--trainer.enable_progress_bar", "false",
                   "--data.init_args.num_train", "768", "--data.init_args.num_val", "256"])
    report = next(cb for cb in cli.trainer.callbacks if isinstance(cb, BaselineReport))
    before, after = report.before, report.after
    assert after["energy"] < before["energy"]
    assert after["energy"] < 0.9 * after["sample median"]
    bandwidth = float(cli.model.energy.bandwidth)
    assert bandwidth != 1.0  # σ was learned
    assert (tmp_path / "config.yaml").is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
