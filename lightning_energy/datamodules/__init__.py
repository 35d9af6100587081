"""LightningDataModules over :mod:`lightning_energy.datasets`: splits, folds and loaders."""

from lightning_energy.datamodules.pose import PoseDataModule, loso_folds
from lightning_energy.datamodules.pose_images import PoseImageDataModule
from lightning_energy.datamodules.pose_sequences import PoseSequenceDataModule
from lightning_energy.datamodules.toy import RobustMeanDataModule
from lightning_energy.datamodules.tracking import TrackingDataModule

__all__ = [
    "PoseDataModule",
    "PoseImageDataModule",
    "PoseSequenceDataModule",
    "RobustMeanDataModule",
    "TrackingDataModule",
    "loso_folds",
]
