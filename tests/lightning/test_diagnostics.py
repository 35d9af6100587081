"""SolverDiagnostics logs the share of masked samples for every stage."""

import pytest
import torch

from lightning_energy.callbacks import SolverDiagnostics
from lightning_energy.cli import run_cli
from lightning_energy.solvers.solution import Solution
from tests.lightning.conftest import CPU_DEBUG, TOY

FEW_STEPS = ["--model.init_args.layer.init_args.solver.init_args.solver.init_args.max_steps", "3"]


def solver_metrics(metrics, stage):
    return {k.split("/")[-1]: float(v) for k, v in metrics.items()
            if k.startswith(f"{stage}/solver/")}


@pytest.mark.parametrize("policy", ["mask", "warn"])
def test_masked_share_is_logged_for_train_val_and_test(tmp_path, policy):
    """Catches: a masked share missing for a stage, or counting samples that kept their gradient
    (under "warn" nothing is masked however many solves fail)."""
    cli = run_cli(["--config", TOY, "--config", CPU_DEBUG, "--trainer.default_root_dir",
                   str(tmp_path), "--model.init_args.layer.init_args.nonconverged", policy,
                   *FEW_STEPS], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    stages = {s: solver_metrics(cli.trainer.callback_metrics, s) for s in ("train", "val")}
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    stages["test"] = solver_metrics(cli.trainer.callback_metrics, "test")
    for stage, values in stages.items():
        assert 0.0 < values["converged"] < 1.0, stage  # some solves failed
        expected = 1.0 - values["converged"] if policy == "mask" else 0.0
        assert values["masked_share"] == pytest.approx(expected, abs=1e-6), stage


def test_masked_share_counts_every_problem_the_layer_solved():
    """Catches: dividing the layer's masked count by the task's rows (the pose task solves B·M
    problems and keeps B), which gave shares above 1."""
    callback, module = SolverDiagnostics(), torch.nn.Linear(1, 1)
    module.device = torch.device("cpu")  # what the callback reads of a LightningModule
    picked = Solution(x=torch.zeros(4, 2), value=torch.zeros(4),
                      status=torch.zeros(4, dtype=torch.int64), converged=torch.ones(4, dtype=bool),
                      num_steps=torch.ones(4, dtype=torch.int64), grad_norm=torch.zeros(4),
                      damping=torch.zeros(4), diagnostics={"masked": torch.tensor(6), "solves": 12})
    for _ in range(2):
        callback.on_validation_batch_end(_Trainer(), module, {"solution": picked}, None, 0)
    assert float(callback.masked["val_metrics"].compute()) == 0.5


class _Trainer:
    sanity_checking = False
