"""SolverDiagnostics logs the masked share for every stage; the monitor the gradient norm."""

import pytest
import torch

from lightning_energy.callbacks import EnergyParameterMonitor, SolverDiagnostics
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
    assert stages["train"]["solves"] > 0
    assert 0 <= stages["train"]["masked"] <= stages["train"]["solves"]
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

    def __init__(self, global_step: int = 0) -> None:
        self.global_step = global_step


def test_energy_grad_norm_is_the_norm_over_every_energy_parameter():
    """Catches: the norm of one parameter only, of the whole module (a backbone's weights), or
    logged on steps between the monitor's period."""
    logged: dict[str, float] = {}

    class Module(torch.nn.Module):
        def log(self, name, value, **kwargs):
            logged[name] = float(value)

    module = Module()
    module.energy = torch.nn.Linear(3, 2)
    module.backbone = torch.nn.Linear(3, 3)
    params = [*module.energy.parameters(), *module.backbone.parameters()]
    for p, g in zip(params, [3.0, 4.0, 100.0, 100.0], strict=True):
        p.grad = torch.full_like(p, g)
    expected = (6 * 3.0**2 + 2 * 4.0**2) ** 0.5  # 2×3 weights at 3, 2 biases at 4
    monitor = EnergyParameterMonitor(every_n_steps=5)
    # Before the optimizer step of batch 10 global_step is 9; the parameters are logged after it.
    for step in (3, 10):
        monitor.on_before_optimizer_step(_Trainer(global_step=step), module, None)
    assert logged == {}
    monitor.on_before_optimizer_step(_Trainer(global_step=9), module, None)
    assert logged["energy/grad_norm"] == pytest.approx(expected, rel=1e-6)


def test_parameter_summary_logs_scalars_small_vectors_and_summaries():
    """Catches: a log-parameter not exponentiated, a small vector's entries missing or
    mislabelled, a large tensor logged entry by entry (25 tracker weights would be 50 columns)."""
    from lightning_energy.callbacks.diagnostics import parameter_summary

    scale = parameter_summary("robust.log_scale", torch.tensor(-1.0))
    assert scale["energy/robust.log_scale"] == pytest.approx(-1.0)
    assert scale["energy/robust.scale"] == pytest.approx(0.36788, rel=1e-4)
    alpha = parameter_summary("log_alpha", torch.tensor([0.0, 2.0]))
    assert alpha["energy/alpha/0"] == pytest.approx(1.0)
    assert alpha["energy/alpha/1"] == pytest.approx(7.38906, rel=1e-5)
    assert alpha["energy/log_alpha/1"] == pytest.approx(2.0)
    assert alpha["energy/log_alpha/mean"] == pytest.approx(1.0)
    weights = parameter_summary("weights", torch.arange(25.0))
    assert set(weights) == {"energy/weights/mean", "energy/weights/std"}
    assert weights["energy/weights/std"] == pytest.approx(float(torch.arange(25.0).std()))
