"""Readers of the on-disk formats, datasets, batch types and synthetic generators (no Lightning).

Human3.6M multi-view frames (:func:`load_h36m` → :class:`PoseArrays` → :class:`PoseFrames` of
:class:`PoseBatch`), tracker results in the OTB layout (:class:`TrackingSequences` of
:class:`TrackerResults` → :class:`TrackingWindows` of :class:`TrackingSample`, collated into a
:class:`TrackingBatch`), their synthetic twins, the robust-estimation toy, and sequence-level
splits that never put one video or subject on both sides.
"""

from lightning_energy.datasets.h36m import load_h36m
from lightning_energy.datasets.otb import TrackerResults, TrackingSequences
from lightning_energy.datasets.pose_batch import PoseArrays, PoseBatch, PoseFrames, collate_pose
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.datasets.splits import kfold_sequences, train_val_split
from lightning_energy.datasets.toy import RobustMeanDataset
from lightning_energy.datasets.tracking_batch import TrackingBatch, TrackingSample, collate_tracking
from lightning_energy.datasets.tracking_synthetic import simulate_tracking
from lightning_energy.datasets.tracking_windows import TrackingWindows

__all__ = [
    "PoseArrays",
    "PoseBatch",
    "PoseFrames",
    "RobustMeanDataset",
    "TrackerResults",
    "TrackingBatch",
    "TrackingSample",
    "TrackingSequences",
    "TrackingWindows",
    "collate_pose",
    "collate_tracking",
    "generate_synthetic_poses",
    "kfold_sequences",
    "load_h36m",
    "simulate_tracking",
    "train_val_split",
]
