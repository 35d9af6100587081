"""Differentiable keypoint head (soft-argmax) and the keypoint detector built on it.

Pixel convention, shared with the renderer: continuous coordinates (u right, v down); input pixel
column i spans [i, i + 1) and has its centre at i + 0.5. A heatmap of stride s has cell (r, c)
covering input pixels [c·s, (c+1)·s) × [r·s, (r+1)·s), so its centre is at
((c + 0.5)·s, (r + 0.5)·s) in input pixels. Keypoints are always returned in input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_energy.errors import ShapeError, describe
from lightning_energy.networks._checkpoint import (
    FORMAT,
    read_checkpoint,
    select_state_dict,
)
from lightning_energy.networks.hourglass import StackedHourglass

# The constructor arguments that change the weights' shapes (beta and radius do not).
ARCHITECTURE = ("num_joints", "stacks", "depth", "channels", "stride")


def cell_centres(size: int, stride: int, like: Tensor) -> Tensor:
    """Input-pixel coordinates (size,) of the centres of ``size`` heatmap cells of ``stride``."""
    return (torch.arange(size, dtype=like.dtype, device=like.device) + 0.5) * stride


def _check_head_arguments(heatmaps: Tensor, beta: float, stride: int) -> None:
    if heatmaps.ndim != 4 or heatmaps.shape[-1] == 0 or heatmaps.shape[-2] == 0:
        raise ShapeError(f"Expected `heatmaps` of shape (N, J, H, W), got {describe(heatmaps)}.")
    if not beta > 0:
        raise ValueError(f"Expected `beta` to be a positive number, got {beta}.")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"Expected `stride` to be a positive int, got {stride!r}.")


def soft_argmax(
    heatmaps: Tensor, beta: float = 1.0, stride: int = 1, radius: float | None = None
) -> tuple[Tensor, Tensor]:
    """Keypoints as the expectation of the spatial softmax of heatmap logits, and a confidence.

    The probability of cell (r, c) is softmax(beta · heatmaps) over the H·W cells of each joint
    (computed in float32 at least); the keypoint is the expected cell centre in input pixels
    (DSNT / soft-argmax semantics). Like every expectation, it is pulled inwards when the
    distribution is cut by the border: a peak of standard deviation σ whose centre lies 3σ from
    the edge is biased by < 0.005σ.

    The confidence is the probability mass near the keypoint, weighted by a Gaussian window of
    standard deviation ``radius`` centred on it: Σ p(r, c) · exp(−‖centre(r, c) − keypoint‖² /
    (2 radius²)). It is smooth in the heatmaps, lies in (0, 1] (1 only when all the mass is in one
    cell), equals radius² / (radius² + σ²) for a Gaussian peak of standard deviation σ, and is low
    for a diffuse map or for two separated peaks (e.g. a left/right confusion), whose expectation
    lies between them where there is little mass. Unlike a confidence built on the variance, a
    little mass far away (background) lowers it only by that mass.

    Args:
        heatmaps: Heatmap logits of shape (N, J, H, W).
        beta: Inverse temperature multiplying the logits before the softmax.
        stride: Input pixels per heatmap cell.
        radius: Standard deviation of the confidence window, in input pixels; default 2 cells
            (2 · stride).

    Returns:
        ``(keypoints, confidence)``: keypoints of shape (N, J, 2) as (u, v) input pixels and
        confidence of shape (N, J), both in the heatmaps' dtype (float32 for half precision).

    Raises:
        ShapeError: If ``heatmaps`` is not 4-D.
        ValueError: If ``beta``, ``stride`` or ``radius`` is not positive.

    Example:
        >>> import torch
        >>> logits = torch.full((1, 1, 8, 8), -30.0)
        >>> logits[0, 0, 2, 5] = 0.0  # all the mass in row 2, column 5
        >>> keypoints, confidence = soft_argmax(logits, beta=1.0, stride=4)
        >>> keypoints  # centre of that cell: ((5 + 0.5) · 4, (2 + 0.5) · 4)
        tensor([[[22., 10.]]])
        >>> confidence
        tensor([[1.]])
    """
    _check_head_arguments(heatmaps, beta, stride)
    radius = 2.0 * stride if radius is None else radius
    if not radius > 0:
        raise ValueError(f"Expected `radius` to be a positive number of pixels, got {radius}.")
    if heatmaps.dtype in (torch.float16, torch.bfloat16):
        heatmaps = heatmaps.float()
    n, j, h, w = heatmaps.shape
    prob = torch.softmax(beta * heatmaps.reshape(n, j, h * w), dim=-1).reshape(n, j, h, w)
    u, v = cell_centres(w, stride, heatmaps), cell_centres(h, stride, heatmaps)
    prob_u, prob_v = prob.sum(dim=-2), prob.sum(dim=-1)  # marginals (N, J, W) and (N, J, H)
    mean_u, mean_v = (prob_u * u).sum(-1), (prob_v * v).sum(-1)
    # The Gaussian window is separable: exp(-Δu²/2r²) · exp(-Δv²/2r²).
    window_u = torch.exp(-0.5 * ((u - mean_u[..., None]) / radius) ** 2)
    window_v = torch.exp(-0.5 * ((v - mean_v[..., None]) / radius) ** 2)
    confidence = torch.einsum("njhw,njh,njw->nj", prob, window_v, window_u)
    confidence = confidence.clamp_min(torch.finfo(confidence.dtype).tiny)
    return torch.stack([mean_u, mean_v], dim=-1), confidence


@dataclass
class Detections:
    """Output of :class:`KeypointDetector`.

    Attributes:
        keypoints: (u, v) input-pixel coordinates of shape (N, J, 2), from the last stack.
        confidence: Per-joint confidence in (0, 1] of shape (N, J) (see :func:`soft_argmax`).
        heatmaps: Heatmap logits of every stack, each of shape (N, J, S / stride, S / stride);
            the last one gave ``keypoints``.

    Example:
        >>> import torch
        >>> detector = KeypointDetector(num_joints=5, stacks=2, depth=1, channels=8)
        >>> out = detector(torch.rand(3, 3, 32, 32))
        >>> out.keypoints.shape, out.confidence.shape, [tuple(h.shape) for h in out.heatmaps]
        (torch.Size([3, 5, 2]), torch.Size([3, 5]), [(3, 5, 16, 16), (3, 5, 16, 16)])
    """

    keypoints: Tensor
    confidence: Tensor
    heatmaps: list[Tensor]


class KeypointDetector(nn.Module):
    """2D keypoint detector: stacked hourglass heatmaps → soft-argmax keypoints and confidences.

    Weights come only from a local file: ``checkpoint`` may be a file written by :meth:`save` or a
    Lightning checkpoint whose ``state_dict`` holds this detector under a prefix (e.g.
    ``backbone.``), which is found by matching keys. Nothing is downloaded. Files are read with
    ``torch.load(weights_only=True)`` and, for Lightning checkpoints whose hyper-parameters hold
    other objects, with full unpickling: load only files you trust.

    On CPU, ``detector.to(memory_format=torch.channels_last)`` and channels-last images make the
    convolutions about 1.5× faster.

    Args:
        num_joints: Number of joints J.
        stacks: Hourglass stacks (each gives heatmaps for intermediate supervision).
        depth: Downsamplings inside each hourglass; S must be divisible by stride · 2**depth.
        channels: Feature channels of the hourglass.
        stride: Input pixels per heatmap cell, 2 or 4.
        beta: Inverse temperature of the spatial softmax.
        radius: Confidence window in input pixels (default 2 · stride), see :func:`soft_argmax`.
        checkpoint: Optional path of a local file to load the weights from.

    Raises:
        FileNotFoundError: If ``checkpoint`` is not a file.
        ValueError: If it cannot be read or its keys or shapes do not match this configuration.

    Example:
        >>> import torch
        >>> detector = KeypointDetector(num_joints=17, stacks=2, depth=3, channels=16)
        >>> out = detector(torch.rand(2, 3, 64, 64))
        >>> tuple(out.keypoints.shape), tuple(out.confidence.shape), len(out.heatmaps)
        ((2, 17, 2), (2, 17), 2)
    """

    def __init__(
        self,
        num_joints: int = 17,
        stacks: int = 2,
        depth: int = 3,
        channels: int = 32,
        stride: int = 2,
        beta: float = 1.0,
        radius: float | None = None,
        checkpoint: str | Path | None = None,
    ) -> None:
        super().__init__()
        if not beta > 0:
            raise ValueError(f"Expected `beta` to be a positive number, got {beta}.")
        if radius is not None and not radius > 0:
            raise ValueError(f"Expected `radius` to be a positive number of pixels, got {radius}.")
        self.config: dict[str, Any] = {
            "num_joints": num_joints, "stacks": stacks, "depth": depth, "channels": channels,
            "stride": stride, "beta": beta, "radius": radius,
        }
        self.network = StackedHourglass(num_joints, stacks, depth, channels, 3, stride)
        self.beta, self.stride, self.radius = beta, stride, radius
        if checkpoint is not None:
            self.load_weights(checkpoint)

    def forward(self, images: Tensor) -> Detections:
        """Detect keypoints.

        Args:
            images: Images of shape (N, 3, S, S) in [0, 1], S divisible by stride · 2**depth.

        Returns:
            :class:`Detections` with keypoints (N, J, 2), confidence (N, J) and every stack's
            heatmaps.
        """
        heatmaps = self.network(images)
        keypoints, confidence = soft_argmax(heatmaps[-1], self.beta, self.stride, self.radius)
        return Detections(keypoints, confidence, heatmaps)

    def load_weights(self, path: str | Path) -> None:
        """Load weights from a :meth:`save` file or a Lightning checkpoint (prefix found by keys).

        Raises:
            FileNotFoundError: If ``path`` is not a file.
            ValueError: If the file cannot be read, was saved for another architecture, or its
                keys do not match (the message names the file and the missing/unexpected keys).
        """
        content = read_checkpoint(path)
        if isinstance(content, dict) and content.get("format") == FORMAT:
            theirs = {k: content["config"].get(k) for k in ARCHITECTURE}
            ours = {k: self.config[k] for k in ARCHITECTURE}
            if theirs != ours:
                raise ValueError(
                    f"{path} holds a KeypointDetector with {theirs}, but this one has {ours}: "
                    "build it with the same arguments, or use KeypointDetector.load(path)."
                )
        state = select_state_dict(content, self.state_dict(), path)
        try:
            self.load_state_dict(state)
        except RuntimeError as err:  # a size mismatch under matching names
            raise ValueError(f"Cannot load the weights in {path}: {err}") from err

    def save(self, path: str | Path) -> None:
        """Write the weights and the constructor arguments to ``path`` (read by :meth:`load`)."""
        config = dict(self.config)
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        torch.save({"format": FORMAT, "config": config, "state_dict": state}, path)

    @classmethod
    def load(cls, path: str | Path) -> KeypointDetector:
        """Rebuild a detector written by :meth:`save` (in training mode, like any new module).

        Raises:
            FileNotFoundError: If ``path`` is not a file.
            ValueError: If it is not a file written by :meth:`save`.
        """
        content = read_checkpoint(path)
        if not (isinstance(content, dict) and content.get("format") == FORMAT):
            raise ValueError(
                f"{path} was not written by KeypointDetector.save; to read the detector out of a "
                "Lightning checkpoint, pass it as KeypointDetector(<its arguments>, "
                "checkpoint=path)."
            )
        detector = cls(**content["config"])
        detector.load_weights(path)
        return detector
