"""SolverDiagnostics logs the share of masked samples for every stage."""

import pytest

from lightning_energy.cli import run_cli
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
