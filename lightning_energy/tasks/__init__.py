"""LightningModules: the :class:`EnergyTask` base and the built-in tasks."""

from lightning_energy.tasks.base import EnergyTask
from lightning_energy.tasks.keypoints import KeypointTask
from lightning_energy.tasks.pose import MultiViewPoseTask
from lightning_energy.tasks.pose_images import ImagePoseTask
from lightning_energy.tasks.pose_sequence import SequencePoseTask
from lightning_energy.tasks.toy import RobustMeanTask
from lightning_energy.tasks.tracking import TrackerFusionTask

__all__ = ["EnergyTask", "ImagePoseTask", "KeypointTask", "MultiViewPoseTask", "RobustMeanTask",
           "SequencePoseTask", "TrackerFusionTask"]
