"""Procedural textures for rendered crops: cluttered backgrounds, occluding patches, blur.

Everything is drawn from a ``torch.Generator`` and vectorised over pixels (and over shapes), so
a crop is deterministic for a seed and costs no Python loop per pixel. Images are (3, S, S)
float tensors in [0, 1]; pixel (row i, column j) has its centre at (j + 0.5, i + 0.5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# Textures need no more precision than the 8-bit images they imitate.
_DTYPE = torch.float32


def random_colours(n: int, gen: torch.Generator, low: float = 0.05, high: float = 0.95) -> Tensor:
    """(n, 3) colours, each channel uniform in [low, high]."""
    return low + (high - low) * torch.rand(n, 3, generator=gen, dtype=_DTYPE)


def pixel_grid(size: int) -> Tensor:
    """(S·S, 2) pixel centres (u, v) of an S×S crop, row by row."""
    centres = torch.arange(size, dtype=_DTYPE) + 0.5
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack((u.flatten(), v.flatten()), dim=-1)


def smooth_field(size: int, cells: int, channels: int, gen: torch.Generator) -> Tensor:
    """(channels, S, S) smooth random field: a ``cells``² uniform grid, bicubic-upsampled."""
    grid = torch.rand(1, channels, cells, cells, generator=gen, dtype=_DTYPE)
    up = F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False)
    return up[0]


def _stripes(points: Tensor, gen: torch.Generator, n: int, size: int) -> Tensor:
    """(n, P) sinusoidal gratings of random frequency, orientation and phase, in [−1, 1]."""
    angle = math.pi * torch.rand(n, generator=gen, dtype=_DTYPE)
    period = size * (0.04 + 0.2 * torch.rand(n, generator=gen, dtype=_DTYPE))
    phase = 2 * math.pi * torch.rand(n, generator=gen, dtype=_DTYPE)
    direction = torch.stack((angle.cos(), angle.sin()), dim=-1)
    return torch.sin(2 * math.pi * (direction @ points.T) / period.unsqueeze(-1) + phase[:, None])


def shape_masks(points: Tensor, gen: torch.Generator, n: int, size: int,
                extent: tuple[float, float]) -> Tensor:
    """(n, P) masks of random rotated rectangles and ellipses over pixel centres ``points``.

    Half-sizes are uniform in ``extent`` (fractions of the crop side ``size``); centres are
    uniform over the crop; each shape is an ellipse or a rectangle with probability ½.
    """
    centre = size * torch.rand(n, 2, generator=gen, dtype=_DTYPE)
    low, high = extent
    half = size * (low + (high - low) * torch.rand(n, 2, generator=gen, dtype=_DTYPE))
    angle = math.pi * torch.rand(n, generator=gen, dtype=_DTYPE)
    ellipse = torch.rand(n, generator=gen) < 0.5
    rel = points.unsqueeze(0) - centre.unsqueeze(1)  # (n, P, 2)
    cos, sin = angle.cos()[:, None], angle.sin()[:, None]
    x = (cos * rel[..., 0] + sin * rel[..., 1]) / half[:, :1]
    y = (-sin * rel[..., 0] + cos * rel[..., 1]) / half[:, 1:]
    inside_ellipse = x**2 + y**2 <= 1
    inside_box = (x.abs() <= 1) & (y.abs() <= 1)
    return torch.where(ellipse[:, None], inside_ellipse, inside_box)


def paint(base: Tensor, masks: Tensor, colours: Tensor) -> Tensor:
    """Paint shapes over ``base`` in order (the last shape covering a pixel wins).

    Args:
        base: (P, 3) colours.
        masks: (n, P) bool shape masks.
        colours: (n, P, 3) per-pixel colour of each shape (textured) or (n, 1, 3).

    Returns:
        (P, 3) painted colours.
    """
    if masks.shape[0] == 0:
        return base
    order = torch.arange(1, masks.shape[0] + 1).unsqueeze(-1)
    top = (masks * order).argmax(dim=0)  # (P,)
    covered = masks.any(dim=0).unsqueeze(-1)
    chosen = colours.expand(masks.shape[0], base.shape[0], 3)[top, torch.arange(base.shape[0])]
    return torch.where(covered, chosen, base)


def textured_colours(points: Tensor, gen: torch.Generator, n: int, size: int,
                     contrast: float) -> Tensor:
    """(n, P, 3) colours of ``n`` shapes, each a random colour modulated by a random grating."""
    colours = random_colours(n, gen)
    amplitude = contrast * torch.rand(n, 1, 1, generator=gen, dtype=_DTYPE)
    stripes = _stripes(points, gen, n, size).unsqueeze(-1)
    return (colours.unsqueeze(1) * (1 + amplitude * stripes)).clamp(0, 1)


def clutter_background(size: int, clutter: int, gen: torch.Generator) -> Tensor:
    """(S·S, 3) cluttered background: a smooth colour field, fine noise and textured shapes.

    Args:
        size: Crop side S in pixels.
        clutter: Number of textured rectangles and ellipses painted over the field.
        gen: Random generator.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> tuple(clutter_background(16, 5, gen).shape)
        (256, 3)
    """
    points = pixel_grid(size)
    field = 0.15 + 0.7 * smooth_field(size, 3, 3, gen)
    grain = smooth_field(size, max(size // 4, 2), 1, gen) - 0.5
    base = (field + 0.25 * grain).flatten(1).T
    masks = shape_masks(points, gen, clutter, size, (0.04, 0.35))
    painted = paint(base, masks, textured_colours(points, gen, clutter, size, 0.5))
    grey = painted.mean(-1, keepdim=True)
    washed = 0.6 * torch.rand(1, generator=gen, dtype=_DTYPE)  # some scenes less saturated
    return (painted + washed * (grey - painted)).clamp(0, 1)


def occluder_patches(size: int, count: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Textured patches laid over the whole scene.

    Args:
        size: Crop side S in pixels.
        count: Number of patches.
        gen: Random generator.

    Returns:
        ``masks`` (count, S·S) bool and ``colours`` (count, S·S, 3).
    """
    points = pixel_grid(size)
    masks = shape_masks(points, gen, count, size, (0.08, 0.2))
    return masks, textured_colours(points, gen, count, size, 0.6)


def gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """Blur a (3, S, S) image with a separable Gaussian of ``sigma`` pixels (reflected borders)."""
    if sigma <= 0:
        return image
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(image.unsqueeze(0), (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(3, 1, 1, -1).contiguous(), groups=3)
    cols = F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(3, 1, -1, 1).contiguous(), groups=3)
    return cols[0]
