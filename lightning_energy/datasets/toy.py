"""Synthetic robust 1-D estimation: inliers around an unknown location, many uniform outliers."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset


class RobustMeanDataset(Dataset[dict[str, Tensor]]):
    """Sample i, drawn from its own seed (so any subset is reproducible).

    Each sample has ``num_points`` values: a fraction f ~ U(0, ``max_outlier_fraction``) of them
    are outliers, uniform on [−``outlier_range``, ``outlier_range``]; the rest are inliers
    N(μ, s²) with μ ~ U(−``location_range``, ``location_range``) and s ~ U(0.2, 2).

    Items are dicts: ``points`` (P,), ``location`` μ (), ``scale`` s (), ``outlier_fraction`` ().
    """

    def __init__(self, size: int, num_points: int = 32, max_outlier_fraction: float = 0.75,
                 location_range: float = 10.0, outlier_range: float = 25.0, seed: int = 0) -> None:
        if not 0 <= max_outlier_fraction < 1:
            raise ValueError(
                f"Expected 0 <= `max_outlier_fraction` < 1, got {max_outlier_fraction}.")
        self.size, self.num_points, self.seed = size, num_points, seed
        self.max_outlier_fraction = max_outlier_fraction
        self.location_range, self.outlier_range = location_range, outlier_range

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        uniform = torch.rand(4, generator=gen)
        location = (2 * uniform[0] - 1) * self.location_range
        scale = 0.2 + 1.8 * uniform[1]
        fraction = uniform[2] * self.max_outlier_fraction
        num_out = int(fraction * self.num_points)
        inliers = location + scale * torch.randn(self.num_points - num_out, generator=gen)
        outliers = (2 * torch.rand(num_out, generator=gen) - 1) * self.outlier_range
        points = torch.cat([inliers, outliers])[torch.randperm(self.num_points, generator=gen)]
        return {"points": points, "location": location, "scale": scale,
                "outlier_fraction": torch.tensor(num_out / self.num_points)}
