"""Small energies with known behaviour: a quadratic (closed-form oracle), a kernel-density mode."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from lightning_energy.energies.base import Energy
from lightning_energy.errors import ShapeError, describe


class QuadraticEnergy(Energy):
    """E(x) = ½ xᵀA x − (b + c)ᵀx with A = FᵀF + shift·I, θ = (F, b), inputs c (B, n).

    The minimiser x* = A⁻¹(b + c) and its derivatives are known in closed form, which makes this
    energy the tutorial example and the test oracle of the adjoints.

    Args:
        n: Number of variables.
        shift: Added to the diagonal of A (A is positive definite for shift > 0).
        seed: Seed of the initial F and b.

    Example:
        >>> import torch, lightning_energy as le
        >>> energy = le.QuadraticEnergy(3)
        >>> c = torch.randn(5, 3)
        >>> solver = le.Newton(tol=1e-10, dtype="float64")
        >>> torch.allclose(le.argmin(energy, c, solver=solver).x, energy.closed_form(c), atol=1e-5)
        True
    """

    def __init__(self, n: int, shift: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.factor = nn.Parameter(torch.randn(n, n, generator=gen) / math.sqrt(n))
        self.b = nn.Parameter(torch.randn(n, generator=gen))
        self.shift = shift
        self.solution_shape = (n,)

    def matrix(self) -> Tensor:
        """A = FᵀF + shift·I, shape (n, n)."""
        eye = torch.eye(self.factor.shape[0], dtype=self.factor.dtype, device=self.factor.device)
        return self.factor.T @ self.factor + self.shift * eye

    def forward(self, x: Tensor, inputs: Tensor) -> Tensor:  # noqa: D102
        a = self.matrix().to(x.dtype)
        quad = 0.5 * torch.einsum("bi,ij,bj->b", x, a, x)
        return quad - (x * (self.b.to(x.dtype) + inputs.to(x.dtype))).sum(-1)

    def initial_solution(self, inputs: Tensor) -> Tensor:  # noqa: D102
        return torch.zeros_like(inputs).detach()

    def closed_form(self, inputs: Tensor) -> Tensor:
        """x* = A⁻¹(b + c), differentiable (B, n)."""
        return torch.linalg.solve(self.matrix(), (self.b + inputs).T).T


class KernelDensityEnergy(Energy):
    """A robust 1-D location estimate: the mode of a weighted kernel density.

    E(x; σ, w) = −Σᵢ wᵢ exp(−(cᵢ − x)² / σ²) for points c (B, P) and weights w (B, P) (default 1;
    masked points get weight 0). σ is a learnable energy parameter (stored as log σ). Points far
    from x contribute almost nothing, so outliers are ignored once x sits in the inliers' basin.

    ``inputs`` is either the points (B, P) or a tuple ``(points, weights)``.

    Args:
        bandwidth: Initial σ.
        learnable: Learn σ.

    Example:
        The mode of the three points around 1 (the outliers at 9 and 9.5 have no pull there):

        >>> import torch, lightning_energy as le
        >>> points = torch.tensor([[0.8, 1.0, 1.2, 9.0, 9.5]], dtype=torch.float64)
        >>> sol = le.argmin(le.KernelDensityEnergy(bandwidth=1.0), points,
        ...                 solver=le.Newton(tol=1e-10))
        >>> round(sol.x.item(), 6)
        1.0
    """

    solution_shape = (1,)

    def __init__(self, bandwidth: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        log_bw = torch.tensor(math.log(bandwidth))
        if learnable:
            self.log_bandwidth = nn.Parameter(log_bw)
        else:
            self.register_buffer("log_bandwidth", log_bw)

    @property
    def bandwidth(self) -> Tensor:
        """σ as a 0-d tensor."""
        return self.log_bandwidth.exp()

    @staticmethod
    def split(inputs: Any) -> tuple[Tensor, Tensor | None]:
        """``(points, weights)`` from either input form."""
        if isinstance(inputs, Tensor):
            return inputs, None
        if isinstance(inputs, tuple | list) and len(inputs) == 2:
            return inputs[0], inputs[1]
        raise ShapeError(f"Expected `inputs` to be points (B, P) or (points, weights), "
                         f"got {describe(inputs)}.")

    def forward(self, x: Tensor, inputs: Any) -> Tensor:  # noqa: D102
        points, weights = self.split(inputs)
        sigma = self.bandwidth.to(x.dtype)
        kernel = torch.exp(-((points.to(x.dtype) - x) ** 2) / sigma**2)
        if weights is not None:
            kernel = kernel * weights.to(x.dtype)
        return -kernel.sum(-1)

    def initial_solution(self, inputs: Any) -> Tensor:
        """The (weighted) median of the points, (B, 1): a robust start inside the inliers."""
        points, weights = self.split(inputs)
        if weights is None:
            return points.detach().median(-1, keepdim=True).values
        order = points.detach().argsort(-1)
        sorted_points = points.detach().gather(-1, order)
        cum = weights.detach().gather(-1, order).cumsum(-1)
        idx = (cum < 0.5 * cum[:, -1:]).sum(-1, keepdim=True).clamp(max=points.shape[-1] - 1)
        return sorted_points.gather(-1, idx)
