"""Ray casting of capsules (cylinders with round ends) from a pinhole camera at the origin.

The renderer of :mod:`lightning_energy.datasets.pose_render` draws a body as capsules between
joints. Every ray starts at the camera centre (the origin of camera coordinates) and every
capsule is intersected exactly (the closed form of I. Quilez's ``capIntersect``), so the
z-buffer, self-occlusion and surface normals are those of the 3D shapes, not of their 2D
outlines. Work in float64: coordinates are millimetres at depths of several metres, and the
quadratic's terms reach 1e25.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _sphere_hit(ray_dot_centre: Tensor, centre_sq: Tensor, radius_sq: Tensor) -> Tensor:
    """Distance to the first hit of unit rays from the origin with spheres (inf on a miss)."""
    disc = ray_dot_centre**2 - (centre_sq - radius_sq)
    t = ray_dot_centre - disc.clamp(min=0).sqrt()
    return torch.where(disc > 0, t, torch.full_like(t, float("inf")))


def intersect_capsules(rays: Tensor, start: Tensor, end: Tensor, radius: Tensor) -> Tensor:
    """Distance along each ray to the nearest surface of each capsule.

    Args:
        rays: (P, 3) unit ray directions in camera coordinates (rays start at the origin).
        start: (K, 3) first end point of each capsule's axis, camera coordinates (mm).
        end: (K, 3) second end point of each capsule's axis.
        radius: (K,) capsule radii (mm).

    Returns:
        (K, P) distance (mm) from the origin to the first hit, ``inf`` where the ray misses
        the capsule or hits it behind the camera.

    Example:
        >>> rays = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
        >>> a = torch.tensor([[-100.0, 0.0, 1000.0]], dtype=torch.float64)
        >>> b = torch.tensor([[100.0, 0.0, 1000.0]], dtype=torch.float64)
        >>> intersect_capsules(rays, a, b, torch.tensor([50.0], dtype=torch.float64)).tolist()
        [[950.0]]
    """
    axis = end - start  # (K, 3)
    axis_sq = (axis * axis).sum(-1, keepdim=True)  # (K, 1)
    axis_dot_ray = axis @ rays.T  # (K, P)
    axis_dot_origin = -(axis * start).sum(-1, keepdim=True)  # ba · (o − a), (K, 1)
    ray_dot_start = start @ rays.T  # (K, P)
    start_sq = (start * start).sum(-1, keepdim=True)
    radius_sq = (radius**2).unsqueeze(-1)
    # Infinite cylinder: a t² + 2 b t + c = 0 (the ray direction has unit length).
    a = (axis_sq - axis_dot_ray**2).clamp(min=1e-12)
    b = -axis_sq * ray_dot_start - axis_dot_origin * axis_dot_ray
    c = axis_sq * start_sq - axis_dot_origin**2 - radius_sq * axis_sq
    disc = b * b - a * c
    t_side = (-b - disc.clamp(min=0).sqrt()) / a
    along = axis_dot_origin + t_side * axis_dot_ray  # position of the hit along the axis
    on_side = (disc >= 0) & (along > 0) & (along < axis_sq)
    # Outside the side wall the first hit is on the cap sphere at the nearer end.
    cap_start = _sphere_hit(ray_dot_start, start_sq, radius_sq)
    cap_end = _sphere_hit(end @ rays.T, (end * end).sum(-1, keepdim=True), radius_sq)
    t_cap = torch.where(along <= 0, cap_start, cap_end)
    t = torch.where(on_side, t_side, torch.where(disc >= 0, t_cap, torch.inf))
    return torch.where(t > 0, t, torch.full_like(t, float("inf")))


def capsule_normals(
    points: Tensor, start: Tensor, end: Tensor, radius: Tensor
) -> Tensor:
    """Outward unit normals of capsules at surface points.

    Args:
        points: (P, 3) surface points (camera coordinates, mm).
        start: (P, 3) axis start of the capsule each point lies on.
        end: (P, 3) axis end.
        radius: (P,) radius.

    Returns:
        (P, 3) unit normals: from the nearest axis point towards the surface point.
    """
    axis = end - start
    s = ((points - start) * axis).sum(-1) / (axis * axis).sum(-1).clamp(min=1e-12)
    nearest = start + s.clamp(0, 1).unsqueeze(-1) * axis
    normal = (points - nearest) / radius.unsqueeze(-1)
    return normal / normal.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def nearest_surface(
    rays: Tensor, start: Tensor, end: Tensor, radius: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Z-buffer of capsules: the nearest capsule per ray, its distance and surface normal.

    Args:
        rays: (P, 3) unit ray directions from the origin.
        start: (K, 3) axis start points (mm).
        end: (K, 3) axis end points.
        radius: (K,) radii.

    Returns:
        ``index`` (P,) long, the nearest capsule (−1 for none), ``distance`` (P,) to it (inf
        for none) and ``normal`` (P, 3), its outward unit normal at the hit (0 for none).

    Example:
        >>> rays = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
        >>> a = torch.tensor([[0.0, -90.0, 900.0], [0.0, -90.0, 800.0]], dtype=torch.float64)
        >>> b = a + torch.tensor([0.0, 180.0, 0.0], dtype=torch.float64)
        >>> index, distance, _ = nearest_surface(rays, a, b, torch.full((2,), 50.0).double())
        >>> index.tolist(), distance.tolist()
        ([1, -1], [750.0, inf])
    """
    hits = intersect_capsules(rays, start, end, radius)
    distance, index = hits.min(dim=0)
    found = torch.isfinite(distance)
    index = torch.where(found, index, torch.full_like(index, -1))
    safe = index.clamp(min=0)
    points = rays * torch.where(found, distance, 0.0).unsqueeze(-1)
    normal = capsule_normals(points, start[safe], end[safe], radius[safe])
    return index, distance, torch.where(found.unsqueeze(-1), normal, 0.0)
