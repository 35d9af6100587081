"""EnergyTask's plumbing: optimizer groups and their learning rates, freezing, the scheduler."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import lightning_energy as le
from lightning_energy.tasks.base import EnergyTask


class LinearTask(EnergyTask):
    """x* = argmin of a quadratic energy whose inputs a linear backbone makes from features."""

    def energy_inputs(self, batch: dict[str, Tensor]) -> Tensor:
        features = batch["features"]
        return features if self.backbone is None else self.backbone(features)

    def loss(self, solution: le.Solution, batch: dict[str, Tensor]) -> Tensor:
        return ((solution.x - batch["target"]) ** 2).mean()


def make_task(**kwargs: Any) -> LinearTask:
    torch.manual_seed(0)
    layer = le.EnergyLayer(le.QuadraticEnergy(3), le.Newton(tol=1e-9, dtype="float64"))
    backbone = kwargs.pop("backbone", nn.Linear(3, 3))
    return LinearTask(layer, backbone, **kwargs)


def _ids(params: list[Tensor]) -> set[int]:
    return {id(p) for p in params}


def test_parameter_groups_split_energy_and_backbone_with_their_learning_rates():
    """Faulty variant: the backbone group takes `energy_lr` (or the groups swap parameters)."""
    task = make_task(energy_lr=0.1, backbone_lr=0.003)
    energy, backbone = task.parameter_groups()
    assert (energy["name"], energy["lr"]) == ("energy", 0.1)
    assert (backbone["name"], backbone["lr"]) == ("backbone", 0.003)
    assert _ids(energy["params"]) == _ids(list(task.layer.parameters()))
    assert _ids(backbone["params"]) == _ids(list(task.backbone.parameters()))
    assert _ids(energy["params"]) | _ids(backbone["params"]) == _ids(list(task.parameters()))


def test_backbone_learning_rate_defaults_to_the_energy_one():
    """Faulty variant: `backbone_lr=None` falls back to the optimizer's own default rate."""
    (_, backbone) = make_task(energy_lr=0.02).parameter_groups()
    assert backbone["lr"] == 0.02


def test_an_optimizer_step_moves_each_group_by_its_own_rate():
    """Faulty variant: `configure_optimizers` hands the optimizer `self.parameters()`."""
    task = make_task(optimizer=torch.optim.SGD, energy_lr=0.1, backbone_lr=0.001)
    optimizer = task.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.001]
    batch = {"features": torch.randn(4, 3), "target": torch.randn(4, 3)}
    before = {name: p.detach().clone() for name, p in task.named_parameters()}
    task.loss(task(batch), batch).backward()
    grads = {name: p.grad.clone() for name, p in task.named_parameters()}
    optimizer.step()
    for name, p in task.named_parameters():
        lr = 0.001 if name.startswith("backbone.") else 0.1
        assert float(grads[name].abs().max()) > 0
        assert torch.allclose(p.detach(), before[name] - lr * grads[name], atol=1e-7)


def test_freeze_backbone_keeps_it_out_of_the_optimizer_and_in_eval_mode():
    """Faulty variant: `freeze_backbone` leaves the backbone trainable (or in train mode)."""
    backbone = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    task = make_task(backbone=backbone, freeze_backbone=True)
    assert not any(p.requires_grad for p in backbone.parameters())
    (group,) = task.parameter_groups()
    assert group["name"] == "energy"
    task.train()
    task.on_train_epoch_start()
    assert not backbone.training
    assert task.layer.training


def test_untrainable_parameters_and_missing_backbone_leave_no_group():
    """Faulty variant: frozen energy parameters (or an empty group) reach the optimizer."""
    task = make_task(backbone=None)
    task.energy.factor.requires_grad_(False)
    (group,) = task.parameter_groups()
    assert _ids(group["params"]) == {id(task.energy.b)}
    task.energy.b.requires_grad_(False)
    assert task.parameter_groups() == []


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_scheduler_is_built_on_the_optimizer_with_its_interval(interval):
    """Faulty variant: the scheduler's `interval` ignores `scheduler_interval`."""
    scheduler = partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    task = make_task(scheduler=scheduler, scheduler_interval=interval)
    config = task.configure_optimizers()
    assert config["lr_scheduler"]["interval"] == interval
    assert config["lr_scheduler"]["scheduler"].optimizer is config["optimizer"]


@pytest.mark.parametrize("rates", [{"energy_lr": 0.0}, {"backbone_lr": -1e-3},
                                   {"energy_lr": "fast"}])
def test_learning_rates_must_be_positive_numbers(rates):
    """Faulty variant: a zero or negative rate is accepted and the group never trains."""
    name = next(iter(rates))
    with pytest.raises(ValueError, match=f"`{name}` to be a float > 0"):
        make_task(**rates)


@pytest.mark.parametrize(("policy", "expected"), [("mask", [True, False]), ("warn", [True, True])])
def test_trainable_samples_follow_the_layer_policy(policy, expected):
    """Faulty variant: `trainable` counts masked (non-converged) samples in the loss."""
    layer = le.EnergyLayer(le.QuadraticEnergy(2), le.Newton(), nonconverged=policy)
    task = LinearTask(layer)
    solution = le.Solution(x=torch.zeros(2, 2), value=torch.zeros(2),
                           status=torch.tensor([0, 1]), converged=torch.tensor([True, False]),
                           num_steps=torch.zeros(2, dtype=torch.long),
                           grad_norm=torch.zeros(2), damping=torch.zeros(2))
    assert task.trainable(solution).tolist() == expected
