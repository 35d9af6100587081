"""Damped trust-region Newton with the exact Hessian."""

from __future__ import annotations

from torch import Tensor

from lightning_energy.solvers.problem import Problem
from lightning_energy.solvers.trust_region import DenseTrustRegion


class Newton(DenseTrustRegion):
    """Trust-region Newton on any smooth :class:`~lightning_energy.Energy`.

    Each step forms every sample's exact Hessian with n batched Hessian-vector products and
    solves the damped system (H + μI) d = −∇ₓE by Cholesky; μ is adapted per sample from the gain
    ratio, which also makes indefinite Hessians safe. Cost per step: one dense (B, n, n) Hessian,
    so prefer :class:`~lightning_energy.NewtonCG` for n in the thousands.

    Example:
        >>> import torch, lightning_energy as le
        >>> energy = le.QuadraticEnergy(3)
        >>> layer = le.EnergyLayer(energy, le.Newton(tol=1e-10))
        >>> sol = layer(torch.zeros(4, 3))
        >>> bool(sol.converged.all())
        True
    """

    curvature_kind = "exact"

    def evaluate(self, problem: Problem, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # noqa: D102
        return problem.value_grad_hessian(x)
