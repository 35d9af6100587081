"""Part 5: what a training step costs as n grows, and learning θ against a grid search.

The step cost comes from ``lightning-energy bench scaling`` (its :func:`measure`, a pose-shaped
least-squares energy with n variables; dense exact Hessian, Gauss–Newton, matrix-free CG). The
grid search tunes the regression toy's energy weights the way one would without gradients: one
shared prior weight w (every wⱼ equal) and the kernel scale δ on a k × k grid, each point scored
by solving the training samples, the best point then scored on the evaluation batch — against
the learned θ (all n + 1 weights, trained with λ = 1e-2) on the same batches.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from typing import Any

import torch

import lightning_energy as le
from lightning_energy.bench import scaling
from studies.assumptions import problems
from studies.assumptions.stability import training_solver

LOG_WEIGHTS = (-8.0, 2.0)
"""Range of log w searched (w from 3e-4 to 7.4)."""
LOG_SCALES = (-2.0, 2.0)
"""Range of log δ searched (δ from 0.14 to 7.4; the targets' noise is 0.3)."""


def step_cost(variables: list[int], batch_size: int, repeats: int) -> list[dict[str, Any]]:
    """``bench scaling``'s records: forward/backward ms and memory per mode and n."""
    args = argparse.Namespace(batch_size=batch_size, steps=5, repeats=repeats, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tol = 0: no solve "converges"
        return [row for n in variables for row in scaling.measure(n, args)]


def _loss(energy: problems.RobustRegression, data: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        x = le.argmin(energy, problems.regression_inputs(data), solver=training_solver(),
                      nonconverged="mask").x
    return float(0.5 * ((x - data["x_true"]) ** 2).sum(-1).mean())


def grid_search(n: int, m: int, num_train: int, num_eval: int, sizes: list[int],
                seed: int) -> list[dict[str, Any]]:
    """For each k: the k × k grid's best point (by training loss), its evaluation loss, time."""
    train = problems.regression_data(num_train, n, m, seed=100 + seed)
    evaluation = problems.regression_data(num_eval, n, m, seed=200 + seed)
    energy = problems.RobustRegression(n)
    out = []
    for k in sizes:
        start = time.perf_counter()
        best = (math.inf, 0.0, 0.0)
        for log_w in torch.linspace(*LOG_WEIGHTS, k).tolist():
            for log_d in torch.linspace(*LOG_SCALES, k).tolist():
                with torch.no_grad():
                    energy.log_weight.fill_(log_w)
                    energy.log_scale.fill_(log_d)
                best = min(best, (_loss(energy, train), log_w, log_d))
        with torch.no_grad():
            energy.log_weight.fill_(best[1])
            energy.log_scale.fill_(best[2])
        out.append({"k": k, "points": k * k, "train_loss": best[0], "log_w": best[1],
                    "log_delta": best[2], "eval_loss": _loss(energy, evaluation),
                    "seconds": time.perf_counter() - start})
    return out


def grid_numbers(grids: list[list[dict[str, Any]]], learned: list[float],
                 learned_seconds: list[float]) -> dict[str, Any]:
    """Per grid size, over seeds: evaluation loss, time, and whether it matched the learned θ.

    Matched: within 1% of the learned evaluation loss of the same seed.
    """
    rows = []
    for i, k in enumerate(r["k"] for r in grids[0]):
        losses = [g[i]["eval_loss"] for g in grids]
        rows.append({"k": k, "points": k * k,
                     "eval_loss_median": float(torch.tensor(losses).median()),
                     "seconds_median": float(torch.tensor([g[i]["seconds"] for g in grids])
                                             .median()),
                     "matched_seeds": sum(loss <= 1.01 * ref
                                          for loss, ref in zip(losses, learned, strict=True))})
    return {"grid": rows, "learned_eval_loss": learned,
            "learned_eval_loss_median": float(torch.tensor(learned).median()),
            "learned_seconds_median": float(torch.tensor(learned_seconds).median())}
