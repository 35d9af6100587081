"""Parts 4 and 6: training with each backward rule, and what the energy's parameters learned.

The regression toy is trained from the same initial θ and batches with every damping λ of the
fidelity part and with unrolled differentiation through the training solver's iterations; each
run logs the training loss, ‖dL/dθ‖, the share of masked solves, the loss on a fixed evaluation
batch and θ itself (the interpretable parameters: the prior weights w and the kernel scale δ).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

import lightning_energy as le
from studies.assumptions import convexity, problems

SETTINGS: dict[str, Callable[[], le.Adjoint]] = {
    "λ = 0": lambda: le.ImplicitAdjoint(0.0),
    "λ = 1e-4": lambda: le.ImplicitAdjoint(1e-4),
    "λ = 1e-3": lambda: le.ImplicitAdjoint(1e-3),
    "λ = 1e-2": lambda: le.ImplicitAdjoint(1e-2),
    "λ = 1e-1": lambda: le.ImplicitAdjoint(1e-1),
    "λ = 1": lambda: le.ImplicitAdjoint(1.0),
    "λ = auto": lambda: le.ImplicitAdjoint("auto"),
    "unrolled": lambda: le.UnrolledAdjoint(),
}
"""The backward rules compared: name → adjoint factory (each run gets a fresh one)."""


def training_solver() -> le.Newton:
    """The training solver of parts 1–3 (Newton, 30 steps, ‖∇ₓE‖ ≤ 1e-6, float64)."""
    return le.Newton(max_steps=30, tol=1e-6, dtype="float64")


def train_regression(energy: problems.RobustRegression, train: dict[str, torch.Tensor],
                     evaluation: dict[str, torch.Tensor], steps: int, batch: int, every: int,
                     lr: float, adjoint: le.Adjoint) -> dict[str, Any]:
    """Adam on ``energy`` through the training solver and ``adjoint``, batches taken in order.

    Returns the log of :func:`convexity.train` and the run's ``seconds``.
    """
    layer = le.EnergyLayer(energy, training_solver(), adjoint, nonconverged="mask")

    def batches(step: int) -> tuple[Any, torch.Tensor]:
        index = torch.arange(step * batch, (step + 1) * batch) % train["x_true"].shape[0]
        picked = {k: v[index] for k, v in train.items()}
        return problems.regression_inputs(picked), picked["x_true"]

    start = time.perf_counter()
    log = convexity.train(layer, batches,
                          (problems.regression_inputs(evaluation), evaluation["x_true"]),
                          steps, lr, every)
    log["seconds"] = time.perf_counter() - start
    return log


def regression_run(n: int, m: int, num_train: int, num_eval: int, steps: int, batch: int,
                   every: int, lr: float, seed: int, adjoint: le.Adjoint) -> dict[str, Any]:
    """Train a fresh regression toy on ``seed``'s data with ``adjoint`` (see train_regression)."""
    torch.manual_seed(seed)
    return train_regression(problems.RobustRegression(n),
                            problems.regression_data(num_train, n, m, seed=100 + seed),
                            problems.regression_data(num_eval, n, m, seed=200 + seed),
                            steps, batch, every, lr, adjoint)


def stability_numbers(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per setting, over seeds: evaluation-loss curves, gradient norms, masked shares."""
    out: dict[str, Any] = {}
    for name, seeds in runs.items():
        steps = sorted(seeds[0]["census"])
        curves = torch.tensor([[s["census"][k]["loss"] for k in steps] for s in seeds])
        grad = torch.tensor([s["grad_norm"] for s in seeds])
        masked = torch.tensor([[m / max(n, 1) for m, n in zip(s["masked"], s["solves"],
                                                              strict=True)] for s in seeds])
        finite = bool(torch.isfinite(curves).all() and torch.isfinite(grad).all())
        seconds = torch.tensor([s["seconds"] for s in seeds])
        out[name] = {
            "census_steps": steps,
            "eval_loss_median": curves.median(0).values.tolist(),
            "eval_loss_min": curves.min(0).values.tolist(),
            "eval_loss_max": curves.max(0).values.tolist(),
            "final_eval_loss": curves[:, -1].tolist(),
            "final_eval_loss_median": float(curves[:, -1].median()),
            "grad_norm_median": grad.median(0).values.tolist(),
            "largest_grad_norm": float(grad.max()),
            "masked_curve": masked.mean(0).tolist(),
            "masked_share": float(masked.mean()),
            "largest_masked_share": float(masked.max()),
            "finite": finite,
            "seconds": seconds.tolist(),
            "seconds_median": float(seconds.median()),
        }
    return out
