"""Readers of the on-disk formats, datasets, batch types and synthetic generators (no Lightning).

Human3.6M multi-view frames (:func:`load_h36m` → :class:`PoseArrays` → :class:`PoseFrames` of
:class:`PoseBatch`), their person crops (:class:`RenderedPoseFrames` rendered by
:func:`render_view`, or real frames read by :class:`ImageFolderFrames`, as
:class:`PoseImageBatch`), tracker results in the OTB layout (:class:`TrackingSequences` of
:class:`TrackerResults` → :class:`TrackingWindows` of :class:`TrackingSample`, collated into a
:class:`TrackingBatch`), their synthetic twins, the robust-estimation toy, and sequence-level
splits that never put one video or subject on both sides.
"""

from lightning_energy.datasets.h36m import load_h36m
from lightning_energy.datasets.otb import TrackerResults, TrackingSequences
from lightning_energy.datasets.pose_batch import PoseArrays, PoseBatch, PoseFrames, collate_pose
from lightning_energy.datasets.pose_image_folder import ImageFolderFrames
from lightning_energy.datasets.pose_images import (
    PoseImageBatch,
    RenderedPoseFrames,
    collate_pose_images,
)
from lightning_energy.datasets.pose_render import (
    RenderConfig,
    RenderedView,
    crop_to_image,
    image_to_crop,
    render_view,
    view_seed,
)
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.datasets.splits import kfold_sequences, train_val_split
from lightning_energy.datasets.toy import RobustMeanDataset
from lightning_energy.datasets.tracking_batch import TrackingBatch, TrackingSample, collate_tracking
from lightning_energy.datasets.tracking_synthetic import simulate_tracking
from lightning_energy.datasets.tracking_windows import TrackingWindows

__all__ = [
    "ImageFolderFrames",
    "PoseArrays",
    "PoseBatch",
    "PoseFrames",
    "PoseImageBatch",
    "RenderConfig",
    "RenderedPoseFrames",
    "RenderedView",
    "RobustMeanDataset",
    "TrackerResults",
    "TrackingBatch",
    "TrackingSample",
    "TrackingSequences",
    "TrackingWindows",
    "collate_pose",
    "collate_pose_images",
    "collate_tracking",
    "crop_to_image",
    "generate_synthetic_poses",
    "image_to_crop",
    "kfold_sequences",
    "load_h36m",
    "render_view",
    "simulate_tracking",
    "train_val_split",
    "view_seed",
]
