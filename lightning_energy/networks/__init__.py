"""Networks that produce energy inputs."""

from lightning_energy.networks.heads import Detections, KeypointDetector, soft_argmax
from lightning_energy.networks.heatmaps import heatmap_loss, heatmap_targets
from lightning_energy.networks.hourglass import StackedHourglass
from lightning_energy.networks.point_weights import PointWeightNet

__all__ = [
    "Detections",
    "KeypointDetector",
    "PointWeightNet",
    "StackedHourglass",
    "heatmap_loss",
    "heatmap_targets",
    "soft_argmax",
]
