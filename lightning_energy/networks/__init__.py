"""Networks that produce energy inputs."""

from lightning_energy.networks.point_weights import PointWeightNet

__all__ = ["PointWeightNet"]
