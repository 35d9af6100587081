"""Synthetic robust 1-D estimation: inliers around an unknown location, many uniform outliers."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightning_energy.data.sampling import EpochShuffleSampler


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


class RobustMeanDataModule(pl.LightningDataModule):
    """Synthetic robust-estimation data with a fixed validation and test set.

    Args:
        num_train: Training samples (redrawn identically each run from ``seed``).
        num_val: Validation samples (fixed, seed ``seed + 1``).
        num_test: Test samples (fixed, seed ``seed + 2``).
        num_points: Points per sample.
        max_outlier_fraction: Upper bound of the per-sample outlier fraction.
        batch_size: Samples per batch.
        num_workers: DataLoader workers.
        seed: Base seed.
    """

    def __init__(self, num_train: int = 4096, num_val: int = 512, num_test: int = 512,
                 num_points: int = 32, max_outlier_fraction: float = 0.75,
                 batch_size: int = 128, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        common: dict[str, Any] = {"num_points": num_points,
                                  "max_outlier_fraction": max_outlier_fraction}
        self.train_set = RobustMeanDataset(num_train, seed=3 * seed, **common)
        self.val_set = RobustMeanDataset(num_val, seed=3 * seed + 1, **common)
        self.test_set = RobustMeanDataset(num_test, seed=3 * seed + 2, **common)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed

    def _loader(self, dataset: RobustMeanDataset, train: bool = False) -> DataLoader:
        sampler = EpochShuffleSampler(len(dataset), self.seed) if train else None
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.num_workers, drop_last=train)

    def train_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader(self.test_set)
