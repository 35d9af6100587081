"""The study's runs: each toy, each seed, parts 1–3; raw per-sample results for the summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

import lightning_energy as le
from studies.assumptions import convexity, cost, drift, fidelity, problems, stability

ADAM_STEP = 0.05
"""Adam's learning rate here: its first step moves every coordinate of θ by about this much."""


@dataclass
class Config:
    """Sizes of one run; :func:`tiny` is the test's."""

    n: int = 6
    m: int = 16
    num_train: int = 1024
    num_eval: int = 128
    steps: int = 40
    batch: int = 64
    every: int = 10
    seeds: tuple[int, ...] = (0, 1, 2)
    sizes: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0])
    budgets: list[int] = field(default_factory=lambda: [1, 3, 5, 8, 12, 16, 20, 30])
    tols: list[float] = field(default_factory=lambda: [1e-1, 1e-2, 1e-3, 1e-4, 1e-6])
    stability_steps: int = 200
    grid_sizes: list[int] = field(default_factory=lambda: [3, 5, 9, 17])
    scaling_variables: list[int] = field(default_factory=lambda: [10, 30, 100, 300])
    scaling_batch: int = 16
    scaling_repeats: int = 3


def tiny() -> Config:
    """Seconds, for the tests."""
    return Config(n=3, m=8, num_train=32, num_eval=16, steps=2, batch=16, every=1, seeds=(0,),
                  sizes=[1e-3, 0.1], budgets=[1, 30], tols=[1e-1, 1e-6], stability_steps=2,
                  grid_sizes=[2], scaling_variables=[6], scaling_batch=2, scaling_repeats=1)


def adjoints(least_squares: bool) -> dict[str, le.Adjoint]:
    """The backward rules whose linear predictions of Δx* part 3 compares."""
    out: dict[str, le.Adjoint] = {"λ = 0": le.ImplicitAdjoint(0.0),
                                  "λ = 1e-2": le.ImplicitAdjoint(1e-2),
                                  "λ = auto": le.ImplicitAdjoint("auto")}
    if least_squares:
        out["Gauss–Newton, λ = 0"] = le.ImplicitAdjoint(0.0, hessian="gauss_newton")
    return out


def unit_rows(vectors: torch.Tensor) -> torch.Tensor:
    """Each row divided by its norm (rows of zeros stay zero)."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-300)


def regression_seed(cfg: Config, seed: int) -> dict[str, Any]:
    """Parts 1–3 on the robust regression for one seed."""
    torch.manual_seed(seed)
    energy = problems.RobustRegression(cfg.n)
    train = problems.regression_data(cfg.num_train, cfg.n, cfg.m, seed=100 + seed)
    evaluation = problems.regression_data(cfg.num_eval, cfg.n, cfg.m, seed=200 + seed)
    cold = stability.training_solver()
    case = problems.regression_case(energy, evaluation, cold)
    out = {"fidelity_init": fidelity.fidelity(case, ("exact", "gauss_newton"))}
    reference = out["fidelity_init"]["reference"]
    # An optimiser step moves the shared θ: one direction for every sample, the batch's descent.
    direction = unit_rows(-reference.mean(0, keepdim=True)).expand_as(reference)
    out["drift"] = drift.step_drift(case, direction, cfg.sizes, adjoints(True), cold)
    out["truncation"] = drift.truncation(case, reference, cfg.budgets, cfg.tols)
    out["training"] = stability.train_regression(energy, train, evaluation, cfg.steps, cfg.batch,
                                                 cfg.every, ADAM_STEP, le.ImplicitAdjoint(1e-2))
    trained = problems.regression_case(energy, evaluation, cold)
    out["fidelity_trained"] = fidelity.fidelity(trained, ("exact", "gauss_newton"))
    return out


def kde_seed(cfg: Config, seed: int) -> dict[str, Any]:
    """Parts 1–3 on the kernel-density mode (θ = per-point weights; σ trained) for one seed."""
    energy = le.KernelDensityEnergy(1.0).double()
    train = problems.kde_data(cfg.num_train, seed=100 + seed)
    evaluation = problems.kde_data(cfg.num_eval, seed=200 + seed)
    case = problems.kde_case(energy, evaluation)
    out = {"fidelity_init": fidelity.fidelity(case, ("exact",))}
    # Per-point weights mean nothing across samples: each sample moves along its own descent.
    direction = unit_rows(-out["fidelity_init"]["reference"])
    out["drift"] = drift.step_drift(case, direction, cfg.sizes, adjoints(False),
                                    problems.kde_solver())
    layer = le.EnergyLayer(energy, problems.kde_solver(), le.ImplicitAdjoint(1e-2))

    def batches(step: int) -> tuple[Any, torch.Tensor]:
        index = torch.arange(step * cfg.batch, (step + 1) * cfg.batch) % cfg.num_train
        return train["points"][index], train["location"][index, None]

    out["training"] = convexity.train(
        layer, batches, (evaluation["points"], evaluation["location"][:, None]), cfg.steps,
        ADAM_STEP, cfg.every)
    out["fidelity_trained"] = fidelity.fidelity(problems.kde_case(energy, evaluation),
                                                ("exact",))
    return out


def run_all(cfg: Config) -> dict[str, list[dict[str, Any]]]:
    """Every seed of both toys (parts 1–3)."""
    return {"regression": [regression_seed(cfg, s) for s in cfg.seeds],
            "kde": [kde_seed(cfg, s) for s in cfg.seeds]}


def run_training(cfg: Config) -> dict[str, Any]:
    """Parts 4–6: the regression trained with every backward rule, grid search, step cost."""
    runs = {name: [stability.regression_run(cfg.n, cfg.m, cfg.num_train, cfg.num_eval,
                                            cfg.stability_steps, cfg.batch, cfg.every,
                                            ADAM_STEP, seed, make())
                   for seed in cfg.seeds]
            for name, make in stability.SETTINGS.items()}
    reference = runs["λ = 1e-2"]
    grids = [cost.grid_search(cfg.n, cfg.m, cfg.num_train, cfg.num_eval, cfg.grid_sizes, seed)
             for seed in cfg.seeds]
    learned = [run["census"][max(run["census"])]["loss"] for run in reference]
    return {"stability": stability.stability_numbers(runs),
            "trajectories": [run["theta"] for run in reference],  # θ per step, per seed
            "grid": cost.grid_numbers(grids, learned, [run["seconds"] for run in reference]),
            "step_cost": cost.step_cost(cfg.scaling_variables, cfg.scaling_batch,
                                        cfg.scaling_repeats)}
