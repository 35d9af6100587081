"""The tutorial's data: 2-D point clouds around a centre, a quarter of the points far off."""

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader


def point_clouds(num: int, seed: int, inliers: int = 12, outliers: int = 4,
                 noise: float = 0.1, spread: float = 4.0) -> list[dict[str, Tensor]]:
    """``num`` samples ``{"points": (P, 2), "centre": (2,)}``, P = inliers + outliers."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.randn(num, 1, 2, generator=gen)
    clean = centre + noise * torch.randn(num, inliers, 2, generator=gen)
    far = centre + spread * torch.randn(num, outliers, 2, generator=gen)
    points = torch.cat([clean, far], 1)
    return [{"points": p, "centre": c} for p, c in zip(points, centre[:, 0], strict=True)]


class CentreDataModule(pl.LightningDataModule):
    """Train, validation and test clouds drawn from separate seeds, so no sample is shared."""

    def __init__(self, batch_size: int = 64, num_train: int = 512, num_val: int = 128,
                 num_test: int = 128, seed: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.seed = seed

    def setup(self, stage: str | None = None) -> None:
        self.samples = {split: point_clouds(num, self.seed * 3 + i)
                        for i, (split, num) in enumerate(self.sizes.items())}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.samples["train"], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.samples["val"], batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.samples["test"], batch_size=self.batch_size)
