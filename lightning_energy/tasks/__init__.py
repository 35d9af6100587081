"""LightningModules: the :class:`EnergyTask` base and the built-in tasks."""

from lightning_energy.tasks.base import EnergyTask
from lightning_energy.tasks.pose import MultiViewPoseTask
from lightning_energy.tasks.toy import RobustMeanTask
from lightning_energy.tasks.tracking import TrackerFusionTask

__all__ = ["EnergyTask", "MultiViewPoseTask", "RobustMeanTask", "TrackerFusionTask"]
