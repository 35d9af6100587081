"""The per-sample reference: a Python loop over samples, Hessians built row by row by autograd.

This mirrors how trust-region implicit learning was first implemented: each sample is solved on
its own, every Hessian row is one autograd call, and the backward solve is done per sample. It is
the baseline against which the batched layer's speed-up is measured.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_energy.bench.timing import median_ms, synchronize
from lightning_energy.energies.base import Energy


def _hessian_rows(energy: Energy, x: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(x, u).sum(), x, create_graph=True)
    rows = [torch.autograd.grad(grad[0, i], x, retain_graph=True)[0][0]
            for i in range(x.shape[1])]
    return grad.detach()[0], torch.stack(rows)


def _solve_one(energy: Energy, u: Tensor, x: Tensor, steps: int, damping: float) -> Tensor:
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    for _ in range(steps):
        grad, hess = _hessian_rows(energy, x, u)
        step = torch.linalg.solve(hess + damping * eye, -grad)
        candidate = x + step
        with torch.no_grad():
            if energy(candidate, u) < energy(x, u):
                x, damping = candidate, damping / 3
            else:
                damping *= 2
    return x


def _backward_one(energy: Energy, u: Tensor, x: Tensor, grad_out: Tensor, damping: float) -> None:
    _, hess = _hessian_rows(energy, x, u)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    v = torch.linalg.solve(hess + damping * eye, grad_out)
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(x, u).sum(), x, create_graph=True)
    params = [p for p in energy.parameters() if p.requires_grad]
    torch.autograd.grad(grad[0], params, grad_outputs=-v, allow_unused=True)


def per_sample_reference(energy: Energy, inputs: Tensor, steps: int, damping: float,
                         repeats: int) -> dict[str, float]:
    """Time the per-sample loop on ``inputs`` (B, ...); returns forward/backward ms and memory."""
    device = inputs.device
    starts = energy.initial_solution(inputs)
    solutions: list[Tensor] = []

    def forward() -> None:
        solutions.clear()
        for b in range(inputs.shape[0]):
            solutions.append(_solve_one(energy, inputs[b : b + 1], starts[b : b + 1], steps,
                                        damping))

    def backward() -> None:
        for b, x in enumerate(solutions):
            _backward_one(energy, inputs[b : b + 1], x, 2 * x.detach()[0], damping)

    fwd = median_ms(forward, device, repeats, warmup=0)
    forward()
    bwd = median_ms(backward, device, repeats, warmup=0)
    synchronize(device)
    return {"forward_ms": fwd, "backward_ms": bwd, "peak_memory_mb": 0.0}
