"""A tiny network giving each point of a 1-D sample a confidence weight."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def robust_features(points: Tensor) -> Tensor:
    """Per-point features (B, P, 3) that do not depend on the sample's location or scale.

    Distance to the median in units of the median absolute deviation (MAD), its square
    (clipped), and the fraction of the sample within one MAD of the point (local density).
    """
    median = points.median(-1, keepdim=True).values
    mad = (points - median).abs().median(-1, keepdim=True).values.clamp_min(1e-3)
    z = (points - median) / mad
    near = ((points[..., :, None] - points[..., None, :]).abs() <= mad[..., None]).float()
    density = near.mean(-1)
    return torch.stack([z.abs().clamp(max=20) / 5, (z / 5).clamp(-3, 3) ** 2, density], -1)


class PointWeightNet(nn.Module):
    """MLP on :func:`robust_features`: points (B, P) → positive weights (B, P), mean ≈ 1 at init.

    Args:
        hidden: Hidden width.

    Example:
        >>> import torch
        >>> from lightning_energy.networks import PointWeightNet
        >>> weights = PointWeightNet()(torch.randn(4, 32))  # points (B, P) → weights (B, P)
        >>> weights.shape, bool((weights > 0).all())
        (torch.Size([4, 32]), True)
    """

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        first, last = nn.Linear(3, hidden), nn.Linear(hidden, 1)
        nn.init.zeros_(last.weight)
        nn.init.constant_(last.bias, 0.5413)  # softplus(0.5413) = 1
        self.mlp = nn.Sequential(first, nn.Tanh(), last)

    def forward(self, points: Tensor) -> Tensor:  # noqa: D102
        return nn.functional.softplus(self.mlp(robust_features(points)).squeeze(-1))
