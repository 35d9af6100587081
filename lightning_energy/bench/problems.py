"""Benchmark problems: least-squares energies shaped like multi-view pose fitting.

:class:`PoseLikeEnergy` fits one frame; :class:`WeightNetPoseEnergy` is the same fit with its
residual weights from a network of any size; :class:`SequencePoseLikeEnergy` a window of frames.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lightning_energy.energies.base import LeastSquaresEnergy
from lightning_energy.energies.robust import PseudoHuber
from lightning_energy.energies.sequence import SequenceLeastSquaresEnergy


class PoseLikeEnergy(LeastSquaresEnergy):
    """Fit a linear-basis 3D shape, yaw, scale and translation to 2D points in C views.

    x = (a (num_bases), yaw, log-scale, t (3)) → n = num_bases + 5; points
    P = s·R(yaw)(μ + Σₖ aₖ eₖ) + t; residuals: ω_cj (Π_c P_j − u_cj) for C views × J joints × 2
    axes with orthographic cameras Π_c, plus a prior σₖ aₖ on each coefficient; a pseudo-Huber
    kernel with a learnable scale. Energy parameters: μ, e, ω, σ, camera matrices, the kernel
    scale (a few thousand scalars). With the defaults n = 30, m = 4·17·2 + 25 = 161.

    ``inputs`` is the 2D points u, shape (B, C, J, 2).
    """

    def __init__(self, joints: int = 17, views: int = 4, num_bases: int = 25, seed: int = 0):
        super().__init__(PseudoHuber(0.2, learnable=True))
        gen = torch.Generator().manual_seed(seed)
        self.mean = nn.Parameter(torch.randn(joints, 3, generator=gen))
        self.bases = nn.Parameter(0.3 * torch.randn(num_bases, joints, 3, generator=gen))
        self.view_weights = nn.Parameter(torch.ones(views, joints))
        self.prior = nn.Parameter(torch.full((num_bases,), 0.3))
        angles = torch.arange(views) * (2 * math.pi / views)
        cams = torch.stack([torch.stack([angles.cos(), angles.sin(), torch.zeros(views)], -1),
                            torch.tensor([0.0, 0.0, 1.0]).expand(views, 3)], 1)
        self.cameras = nn.Parameter(cams)  # (C, 2, 3) orthographic projections
        self.num_bases = num_bases
        self.solution_shape = (num_bases + 5,)

    def points(self, x: Tensor) -> Tensor:
        """3D points (B, J, 3) for solutions x (B, n)."""
        k = self.num_bases
        a, yaw, log_s, t = x[:, :k], x[:, k], x[:, k + 1], x[:, k + 2:]
        shape = self.mean.to(x.dtype) + torch.einsum("bk,kjd->bjd", a, self.bases.to(x.dtype))
        c, s = torch.cos(yaw), torch.sin(yaw)
        rotated = torch.stack([c[:, None] * shape[..., 0] - s[:, None] * shape[..., 1],
                               s[:, None] * shape[..., 0] + c[:, None] * shape[..., 1],
                               shape[..., 2]], -1)
        return torch.exp(log_s)[:, None, None] * rotated + t[:, None, :]

    def residuals(self, x: Tensor, inputs: Tensor) -> Tensor:  # noqa: D102
        proj = torch.einsum("cuv,bjv->bcju", self.cameras.to(x.dtype), self.points(x))
        reproj = self.view_weights.to(x.dtype)[None, :, :, None] * (proj - inputs)
        prior = self.prior.to(x.dtype) * x[:, : self.num_bases]
        return torch.cat([reproj.flatten(1), prior], dim=1)

    def initial_solution(self, inputs: Tensor) -> Tensor:  # noqa: D102
        return inputs.new_zeros(inputs.shape[0], self.num_bases + 5)

    def sample_inputs(self, batch: int, noise: float = 0.05, seed: int = 1) -> Tensor:
        """Observations (B, C, J, 2) of random poses with Gaussian noise and 5% gross outliers.

        Drawn on the CPU (the same numbers on every device), returned on the energy's device.
        """
        gen = torch.Generator().manual_seed(seed)
        dtype, device = self.mean.dtype, self.mean.device
        x = 0.5 * torch.randn(batch, self.num_bases + 5, generator=gen, dtype=dtype)
        x[:, self.num_bases + 1] = 0.1 * x[:, self.num_bases + 1]
        with torch.no_grad():
            proj = torch.einsum("cuv,bjv->bcju", self.cameras, self.points(x.to(device))).cpu()
        obs = proj + noise * torch.randn(proj.shape, generator=gen, dtype=dtype)
        outliers = torch.rand(proj.shape[:-1], generator=gen) < 0.05
        return torch.where(outliers[..., None], obs + 2.0, obs).to(device)


class WeightNetPoseEnergy(PoseLikeEnergy):
    """:class:`PoseLikeEnergy` whose view-and-joint weights ω come from a network of width h.

    ω = softplus(net(e)) for a fixed embedding e (C·J × 16) of the view–joint pairs and a
    two-layer tanh network of hidden width ``hidden``: 18·h + 1 more energy parameters, while
    n, m and the solve are those of the plain energy. For measuring what the number of energy
    parameters costs (``bench scaling --hidden``).
    """

    def __init__(self, hidden: int, joints: int = 17, views: int = 4, num_bases: int = 25,
                 seed: int = 0) -> None:
        super().__init__(joints, views, num_bases, seed)
        gen = torch.Generator().manual_seed(seed + 1)
        self.register_buffer("embedding", torch.randn(views * joints, 16, generator=gen))
        self.weight_net = nn.Sequential(nn.Linear(16, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        del self.view_weights  # the parent's free weights; the property below replaces them

    @property
    def view_weights(self) -> Tensor:  # type: ignore[override]
        """ω (C, J) from the network."""
        views, joints = self.cameras.shape[0], self.mean.shape[0]
        return nn.functional.softplus(self.weight_net(self.embedding)).reshape(views, joints)


class SequencePoseLikeEnergy(SequenceLeastSquaresEnergy):
    """:class:`PoseLikeEnergy` over a window of T frames, with a shared body and smoothness.

    Frame t: the per-frame pose residuals of :class:`PoseLikeEnergy` with its points shifted by
    a per-window offset of every joint (s = 3J shared variables, the body's shape correction);
    pairs: the joints' displacement between neighbouring frames, weighted; shared: a prior on
    the offsets. p = ``num_bases`` + 5 per frame; with the defaults p = 30, s = 51.
    ``inputs``: 2D points (B, T, C, J, 2).

    Args:
        joints: Joints J.
        views: Views C.
        num_bases: Basis coefficients per frame (p = ``num_bases`` + 5).
        seed: Seed of the random shape model and cameras.
    """

    def __init__(self, joints: int = 17, views: int = 4, num_bases: int = 25,
                 seed: int = 0) -> None:
        super().__init__(PseudoHuber(0.2, learnable=True))
        self.frame = PoseLikeEnergy(joints, views, num_bases, seed)
        self.frame.kernel = None  # the kernel is this energy's, over every residual
        self.frame_size, self.shared_size = num_bases + 5, 3 * joints
        self.log_smooth = nn.Parameter(torch.tensor(0.0))
        self.log_body_prior = nn.Parameter(torch.tensor(1.0))

    def _points(self, frames: Tensor, shared: Tensor) -> Tensor:
        b, t, p = frames.shape
        points = self.frame.points(frames.reshape(b * t, p)).reshape(b, t, -1, 3)
        return points + shared.reshape(b, 1, -1, 3)

    def frame_residuals(self, frames: Tensor, shared: Tensor, inputs: Tensor) -> Tensor:  # noqa: D102
        b, t, _ = frames.shape
        cams = self.frame.cameras.to(frames.dtype)
        proj = torch.einsum("cuv,btjv->btcju", cams, self._points(frames, shared))
        weights = self.frame.view_weights.to(frames.dtype)[None, None, :, :, None]
        prior = self.frame.prior.to(frames.dtype) * frames[..., : self.frame.num_bases]
        return torch.cat([(weights * (proj - inputs)).reshape(b, t, -1), prior], -1)

    def pair_residuals(self, frames: Tensor, shared: Tensor, inputs: Tensor) -> Tensor:  # noqa: D102
        points = self._points(frames, shared)
        step = (points[:, 1:] - points[:, :-1]).flatten(2)
        return self.log_smooth.to(frames.dtype).exp() * step

    def shared_residuals(self, shared: Tensor, inputs: Tensor) -> Tensor:  # noqa: D102
        return self.log_body_prior.to(shared.dtype).exp() * shared

    def initial_solution(self, inputs: Tensor) -> Tensor:  # noqa: D102
        b, t = inputs.shape[:2]
        return inputs.new_zeros(b, t * self.frame_size + self.shared_size)

    def sample_inputs(self, batch: int, frames: int, seed: int = 1) -> Tensor:
        """Observations (B, T, C, J, 2): :meth:`PoseLikeEnergy.sample_inputs` of B·T poses."""
        obs = self.frame.sample_inputs(batch * frames, seed=seed)
        return obs.reshape(batch, frames, *obs.shape[1:])
