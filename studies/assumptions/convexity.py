"""Part 1: is the Hessian at x* positive definite, at initialisation and while θ is trained?

Training is a plain Adam loop on the energy's shared parameters through an ``EnergyLayer``
with the library's defaults (``ImplicitAdjoint(1e-2)``, ``nonconverged="mask"``); every few
steps the exact Hessian's eigenvalues are taken at the x* of a fixed evaluation batch solved by
the training solver. The layer's own diagnostics say what it did with the bad solves: masked
samples (no gradient) and damped solves that had to raise λ (``backward/fallbacks``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import lightning_energy as le
from studies.assumptions.problems import eigenvalues


def census(layer: le.EnergyLayer, inputs: Any, target: Tensor) -> dict[str, Any]:
    """Eigenvalues of H at x* (B, n), which solves converged (B,) and the batch's loss.

    x* is the training solver's; the loss is the mean of ½‖x* − target‖².
    """
    with torch.no_grad():
        solution = layer(inputs)
    mu = eigenvalues(layer.energy, solution.x, inputs)
    loss = float(0.5 * ((solution.x - target) ** 2).sum(-1).mean())
    return {"mu": mu, "converged": solution.converged, "loss": loss}


def not_pd_share(record: dict[str, Tensor]) -> float:
    """Share of solves whose Hessian at x* has an eigenvalue ≤ 0."""
    return float((record["mu"][:, 0] <= 0).double().mean())


def train(layer: le.EnergyLayer, batches: Callable[[int], tuple[Any, Tensor]],
          evaluation: tuple[Any, Tensor], steps: int, lr: float, every: int) -> dict[str, Any]:
    """Adam on the energy parameters for ``steps`` batches; what the layer did at each step.

    ``batches(step)`` gives (inputs, target x); the loss is the mean of ½‖x* − target‖².
    Returns the per-step loss, gradient norm ‖dL/dθ‖, masked count, fallback count and
    parameters, and the census of the ``evaluation`` batch (inputs, target) every ``every``
    steps (step 0 is the initial θ).
    """
    params = [p for p in layer.energy.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=lr)
    log: dict[str, Any] = {"loss": [], "grad_norm": [], "masked": [], "fallbacks": [],
                           "solves": [], "theta": [], "census": {0: census(layer, *evaluation)}}
    for step in range(steps):
        inputs, target = batches(step)
        solution = layer(inputs)
        loss = 0.5 * ((solution.x - target) ** 2).sum(-1).mean()
        optimiser.zero_grad()
        loss.backward()
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        log["grad_norm"].append(float(torch.cat([g.flatten() for g in grads]).norm()))
        optimiser.step()
        diag = solution.diagnostics
        log["loss"].append(float(loss.detach()))
        log["masked"].append(int(diag["masked"]))
        log["solves"].append(int(diag["solves"]))
        log["fallbacks"].append(int(diag.get("backward/fallbacks", 0)))
        log["theta"].append(torch.cat([p.detach().flatten() for p in params]).tolist())
        if (step + 1) % every == 0:
            log["census"][step + 1] = census(layer, *evaluation)
    return log
