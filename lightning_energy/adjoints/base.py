"""The adjoint interface: how dL/dx* becomes dL/dθ and dL/dinputs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from lightning_energy._tree import tree_leaves
from lightning_energy.energies.base import Energy
from lightning_energy.solvers.base import Solver
from lightning_energy.solvers.solution import Solution


def differentiable_leaves(energy: Energy, inputs: Any) -> list[Tensor]:
    """Energy parameters and floating input tensors that require grad, in a fixed order."""
    params = [p for p in energy.parameters() if p.requires_grad]
    leaves = [t for t in tree_leaves(inputs) if t.is_floating_point() and t.requires_grad]
    return params + leaves


class Adjoint(ABC):
    """A rule for differentiating x*(θ, inputs) = argmin_x E(x; θ, inputs).

    Subclasses implement :meth:`solve`, which runs the solver and returns a :class:`Solution`
    whose ``x`` carries the gradient rule.

    Example:
        A rule that lets no gradient through x* (the inputs and θ get none):

        >>> import torch, lightning_energy as le
        >>> from lightning_energy.solvers import Problem
        >>> class Detached(le.Adjoint):
        ...     def solve(self, energy, solver, inputs, x0, shape, mask_nonconverged):
        ...         problem = Problem(energy, inputs, shape, x0.dtype, detach=True)
        ...         return solver.solve(problem, x0)
        >>> layer = le.EnergyLayer(le.QuadraticEnergy(2), le.Newton(), Detached())
        >>> layer(torch.randn(4, 2, requires_grad=True)).x.requires_grad
        False
    """

    def check(self, energy: Energy, solver: Solver) -> None:  # noqa: B027
        """Raise ``IncompatibleSolverError`` if this adjoint cannot serve ``energy``/``solver``."""

    @abstractmethod
    def solve(
        self,
        energy: Energy,
        solver: Solver,
        inputs: Any,
        x0: Tensor,
        shape: tuple[int, ...],
        mask_nonconverged: bool,
    ) -> Solution:
        """Minimise and attach gradients.

        Args:
            energy: The energy.
            solver: The inner solver.
            inputs: Per-sample inputs (tensors with leading dimension B).
            x0: Flat starting points (B, n), already in the solve dtype: the dtype a
                :class:`~lightning_energy.solvers.Problem` computes in (never half precision).
            shape: Per-sample solution shape.
            mask_nonconverged: Give non-converged samples zero gradient.

        Returns:
            The solution; ``x`` (B, *shape) is differentiable where gradients are enabled.
        """


def mask_gradient(x: Tensor, keep: Tensor) -> Tensor:
    """``x`` with the gradient of samples where ``keep`` is False cut (values unchanged)."""
    mask = keep.reshape(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, x, x.detach())
