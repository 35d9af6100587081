"""Robust kernels ρ(s) on squared residuals s = r², normalised so that ρ(s) ≈ s near 0.

Each kernel has a scale δ (residuals much larger than δ are down-weighted). Pass
``learnable=True`` to make δ an energy parameter (stored as log δ so it stays positive).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class RobustKernel(nn.Module):
    """Base class: subclasses implement :meth:`forward` (ρ) and :meth:`weight` (ρ').

    Args:
        scale: Kernel scale δ > 0, in the units of the residuals.
        learnable: Make δ a learnable energy parameter.

    Example:
        A kernel of one's own, the truncated quadratic:

        >>> import torch
        >>> class Truncated(RobustKernel):  # ρ(s) = min(s, δ²)
        ...     def forward(self, squared):
        ...         return torch.clamp(squared, max=self.scale**2)
        ...     def weight(self, squared):
        ...         return (squared <= self.scale**2).to(squared.dtype)
        >>> Truncated(1.0).weight(torch.tensor([0.25, 4.0], dtype=torch.float64))
        tensor([1., 0.], dtype=torch.float64)
    """

    def __init__(self, scale: float = 1.0, learnable: bool = False) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"Expected `scale` > 0, got {scale}.")
        log_scale = torch.tensor(math.log(scale))
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def scale(self) -> Tensor:
        """The scale δ as a 0-d tensor."""
        return self.log_scale.exp()

    def forward(self, squared: Tensor) -> Tensor:
        """ρ(s) for squared residuals ``squared`` of any shape."""
        raise NotImplementedError

    def weight(self, squared: Tensor) -> Tensor:
        """ρ'(s), the IRLS weight, same shape as ``squared``."""
        raise NotImplementedError

    def weight_derivative(self, squared: Tensor) -> Tensor:
        """ρ''(s), same shape as ``squared`` (exact Hessians of robust energies need it).

        By forward-mode differentiation of :meth:`weight` here; the built-in kernels override it
        with the closed form (on long sequences the jvp cost a quarter of a solver step).
        """
        return torch.func.jvp(self.weight, (squared,), (torch.ones_like(squared),))[1]


class Huber(RobustKernel):
    """ρ(s) = s for s ≤ δ², 2δ√s − δ² beyond (quadratic core, linear tails).

    Example:
        >>> import torch, lightning_energy as le
        >>> kernel = le.robust.Huber(1.0)
        >>> squared = torch.tensor([0.25, 4.0], dtype=torch.float64)
        >>> kernel(squared)
        tensor([0.2500, 3.0000], dtype=torch.float64)
        >>> kernel.weight(squared)
        tensor([1.0000, 0.5000], dtype=torch.float64)
    """

    def forward(self, squared: Tensor) -> Tensor:  # noqa: D102
        d2 = self.scale**2
        root = torch.sqrt(torch.clamp(squared, min=torch.finfo(squared.dtype).tiny))
        return torch.where(squared <= d2, squared, 2 * self.scale * root - d2)

    def weight(self, squared: Tensor) -> Tensor:  # noqa: D102
        root = torch.sqrt(torch.clamp(squared, min=torch.finfo(squared.dtype).tiny))
        return torch.where(squared <= self.scale**2, torch.ones_like(squared), self.scale / root)

    def weight_derivative(self, squared: Tensor) -> Tensor:  # noqa: D102
        root = torch.sqrt(torch.clamp(squared, min=torch.finfo(squared.dtype).tiny))
        return torch.where(squared <= self.scale**2, torch.zeros_like(squared),
                           -0.5 * self.scale / (root * root * root))


class PseudoHuber(RobustKernel):
    """ρ(s) = 2δ²(√(1 + s/δ²) − 1): smooth everywhere, linear tails.

    Example:
        >>> import torch, lightning_energy as le
        >>> kernel = le.robust.PseudoHuber(1.0)
        >>> squared = torch.tensor([0.0, 3.0], dtype=torch.float64)
        >>> kernel(squared)
        tensor([0., 2.], dtype=torch.float64)
        >>> kernel.weight(squared)
        tensor([1.0000, 0.5000], dtype=torch.float64)
    """

    def forward(self, squared: Tensor) -> Tensor:  # noqa: D102
        d2 = self.scale**2
        return 2 * d2 * (torch.sqrt(1 + squared / d2) - 1)

    def weight(self, squared: Tensor) -> Tensor:  # noqa: D102
        return torch.rsqrt(1 + squared / self.scale**2)

    def weight_derivative(self, squared: Tensor) -> Tensor:  # noqa: D102
        d2 = self.scale**2
        return -0.5 / d2 * torch.rsqrt(1 + squared / d2) ** 3


class Cauchy(RobustKernel):
    """ρ(s) = δ² log(1 + s/δ²): logarithmic tails (redescending influence).

    Example:
        >>> import torch, lightning_energy as le
        >>> le.robust.Cauchy(1.0).weight(torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64))
        tensor([1.0000, 0.5000, 0.2500], dtype=torch.float64)
    """

    def forward(self, squared: Tensor) -> Tensor:  # noqa: D102
        d2 = self.scale**2
        return d2 * torch.log1p(squared / d2)

    def weight(self, squared: Tensor) -> Tensor:  # noqa: D102
        return (1 + squared / self.scale**2).reciprocal()

    def weight_derivative(self, squared: Tensor) -> Tensor:  # noqa: D102
        d2 = self.scale**2
        return -(1 + squared / d2).reciprocal().square() / d2


class GemanMcClure(RobustKernel):
    """ρ(s) = s δ² / (s + δ²): bounded, strongly redescending.

    Example:
        >>> import torch, lightning_energy as le
        >>> kernel = le.robust.GemanMcClure(1.0)
        >>> squared = torch.tensor([1.0, 3.0], dtype=torch.float64)
        >>> kernel(squared)
        tensor([0.5000, 0.7500], dtype=torch.float64)
        >>> kernel.weight(squared)
        tensor([0.2500, 0.0625], dtype=torch.float64)
    """

    def forward(self, squared: Tensor) -> Tensor:  # noqa: D102
        d2 = self.scale**2
        return squared * d2 / (squared + d2)

    def weight(self, squared: Tensor) -> Tensor:  # noqa: D102
        d2 = self.scale**2
        return d2**2 / (squared + d2) ** 2

    def weight_derivative(self, squared: Tensor) -> Tensor:  # noqa: D102
        d2 = self.scale**2
        return -2 * d2**2 / (squared + d2) ** 3
