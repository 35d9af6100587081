"""DataModule of the robust 1-D estimation toy (synthetic, fixed val/test sets)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from lightning_energy.datasets.sampling import EpochShuffleSampler
from lightning_energy.datasets.toy import RobustMeanDataset


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

    Example:
        >>> dm = RobustMeanDataModule(num_train=8, num_val=4, num_test=4, batch_size=4)
        >>> batch = next(iter(dm.train_dataloader()))
        >>> sorted(batch), tuple(batch["points"].shape)
        (['location', 'outlier_fraction', 'points', 'scale'], (4, 32))
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
