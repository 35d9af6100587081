"""Stacked hourglass network (Newell, Yang & Deng, ECCV 2016) producing per-joint heatmaps.

The network is built from pre-activation residual modules (BN → ReLU → conv, bottleneck
1×1 → 3×3 → 1×1). A stem downsamples the image by ``stride``; each stack is one recursive
hourglass followed by a heatmap head. Every stack's heatmaps are returned (intermediate
supervision) and, as in the paper, re-injected into the next stack's input through 1×1
convolutions of both the heatmaps and the stack's features.
"""

from __future__ import annotations

from torch import Tensor, nn

from lightning_energy.errors import ShapeError, describe


class Residual(nn.Module):
    """Pre-activation bottleneck residual module: (N, C_in, H, W) → (N, C_out, H, W).

    Args:
        in_channels: Input channels C_in.
        out_channels: Output channels C_out; the bottleneck has C_out / 2 channels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = max(out_channels // 2, 1)
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1),
        )
        same = in_channels == out_channels
        self.skip: nn.Module = nn.Identity() if same else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.skip(x) + self.body(x)


class Hourglass(nn.Module):
    """One recursive hourglass: (N, C, H, W) → (N, C, H, W), H and W divisible by 2**depth.

    At each level the input goes through a residual branch at the current resolution and,
    in parallel, is max-pooled, processed (recursively down to ``depth`` levels), upsampled
    (nearest neighbour) and added back.

    Args:
        depth: Number of 2× downsamplings.
        channels: Feature channels C, the same at every level.
    """

    def __init__(self, depth: int, channels: int) -> None:
        super().__init__()
        self.up = Residual(channels, channels)
        self.down = nn.Sequential(nn.MaxPool2d(2), Residual(channels, channels))
        self.inner: nn.Module = (
            Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        )
        self.after = Residual(channels, channels)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.up(x) + self.upsample(self.after(self.inner(self.down(x))))


def _stem(in_channels: int, channels: int, stride: int) -> nn.Sequential:
    """7×7 stride-2 convolution, residual modules, and one 2× max-pool when ``stride`` is 4."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, channels, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        Residual(channels, channels),
    ]
    if stride == 4:
        layers.append(nn.MaxPool2d(2))
    layers.append(Residual(channels, channels))
    return nn.Sequential(*layers)


class StackedHourglass(nn.Module):
    """Stacked hourglass: images (N, C_in, S, S) → one heatmap tensor per stack.

    Each stack returns heatmap logits of shape (N, J, S / stride, S / stride); the last one is
    the final prediction, the others are for intermediate supervision. Heatmap cell (i, j)
    covers input pixels [j·stride, (j+1)·stride) × [i·stride, (i+1)·stride) (u right, v down).

    Args:
        num_joints: Number of heatmaps J per stack.
        stacks: Number of hourglasses, each with its own heatmap output.
        depth: Downsamplings inside each hourglass; S must be divisible by
            stride · 2**depth.
        channels: Feature channels throughout the network.
        in_channels: Image channels C_in.
        stride: Downsampling of the stem, 2 or 4: heatmaps are S / stride pixels wide.

    Raises:
        ValueError: If ``stride`` is not 2 or 4, or a size is not positive.

    Example:
        >>> import torch
        >>> net = StackedHourglass(num_joints=17, stacks=2, depth=3, channels=16)
        >>> heatmaps = net(torch.rand(2, 3, 64, 64))
        >>> [tuple(h.shape) for h in heatmaps]
        [(2, 17, 32, 32), (2, 17, 32, 32)]
    """

    def __init__(
        self,
        num_joints: int = 17,
        stacks: int = 2,
        depth: int = 3,
        channels: int = 64,
        in_channels: int = 3,
        stride: int = 2,
    ) -> None:
        super().__init__()
        if stride not in (2, 4):
            raise ValueError(f"Expected `stride` to be 2 or 4, got {stride}.")
        for name, value in (("num_joints", num_joints), ("stacks", stacks), ("depth", depth),
                            ("channels", channels), ("in_channels", in_channels)):
            if value < 1:
                raise ValueError(f"Expected `{name}` to be a positive int, got {value}.")
        self.in_channels, self.stride, self.depth = in_channels, stride, depth
        self.stem = _stem(in_channels, channels, stride)
        self.hourglasses = nn.ModuleList(Hourglass(depth, channels) for _ in range(stacks))
        self.features = nn.ModuleList(
            nn.Sequential(
                Residual(channels, channels),
                nn.Conv2d(channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            )
            for _ in range(stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(channels, num_joints, 1) for _ in range(stacks))
        # Re-injection into the next stack: features and heatmaps mapped back to `channels`.
        self.merge_features = nn.ModuleList(
            nn.Conv2d(channels, channels, 1) for _ in range(stacks - 1)
        )
        self.merge_heatmaps = nn.ModuleList(
            nn.Conv2d(num_joints, channels, 1) for _ in range(stacks - 1)
        )

    @property
    def size_multiple(self) -> int:
        """The image side S must be a multiple of this: stride · 2**depth."""
        return self.stride * 2**self.depth

    def check_images(self, images: Tensor) -> None:
        """Raise :class:`~lightning_energy.errors.ShapeError` unless images are (N, C_in, S, S)."""
        shape = tuple(images.shape)
        ok = len(shape) == 4 and shape[1] == self.in_channels and shape[2] == shape[3]
        if not ok or shape[2] % self.size_multiple or shape[2] == 0:
            raise ShapeError(
                f"Expected `images` of shape (N, {self.in_channels}, S, S) with S divisible by "
                f"{self.size_multiple} (stride {self.stride} × 2**depth {2**self.depth}), "
                f"got {describe(images)}."
            )

    def forward(self, images: Tensor) -> list[Tensor]:
        """Heatmap logits of every stack.

        Args:
            images: Images of shape (N, C_in, S, S), S divisible by :attr:`size_multiple`.

        Returns:
            A list of ``stacks`` tensors, each of shape (N, J, S / stride, S / stride).
        """
        self.check_images(images)
        x = self.stem(images)
        heatmaps: list[Tensor] = []
        for k, (hourglass, features, head) in enumerate(
            zip(self.hourglasses, self.features, self.heads, strict=True)
        ):
            y = features(hourglass(x))
            heatmaps.append(head(y))
            if k < len(self.merge_features):
                x = x + self.merge_features[k](y) + self.merge_heatmaps[k](heatmaps[-1])
        return heatmaps
