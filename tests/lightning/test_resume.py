"""fit, then fit --ckpt_path last, ends exactly where an uninterrupted run ends."""

import torch

from lightning_energy.cli import run_cli
from tests.lightning.conftest import CPU_DEBUG, TOY

SMALL = ["--trainer.limit_train_batches", "3", "--data.init_args.num_train", "512",
         "--data.init_args.num_val", "64", "--data.init_args.batch_size", "64"]


def fit(root, epochs, *extra):
    return run_cli(["fit", "--config", TOY, "--config", CPU_DEBUG,
                    "--trainer.default_root_dir", str(root),
                    "--trainer.max_epochs", str(epochs), *SMALL, *extra])


def test_resume_is_exact(tmp_path):
    straight = torch.load(str(_last(fit(tmp_path / "a", 4))), weights_only=False)
    fit(tmp_path / "b", 2)
    # With a logger on, the checkpoint folder must still be found (wandb gives each run a new id).
    with_logger = ["--trainer.logger", "lightning_energy.loggers.OfflineFirstWandbLogger",
                   "--trainer.logger.save_dir", str(tmp_path / "runs")]
    resumed_cli = fit(tmp_path / "b", 4, "--ckpt_path", "last", *with_logger)
    resumed = torch.load(str(_last(resumed_cli)), weights_only=False)
    assert resumed["global_step"] == straight["global_step"] == 12
    assert resumed["epoch"] == straight["epoch"]
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    opt_a, opt_b = straight["optimizer_states"][0], resumed["optimizer_states"][0]
    for idx, state in opt_a["state"].items():
        for name, tensor in state.items():
            assert torch.equal(tensor, opt_b["state"][idx][name]), (idx, name)


def _last(cli):
    return cli.trainer.checkpoint_callback.last_model_path
