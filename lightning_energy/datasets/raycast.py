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

    Only the (capsule, ray) pairs whose ray meets the capsule's bounding sphere are intersected
    exactly: a limb covers a small part of a person crop, so most pairs are misses found by one
    dot product.

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
    centre = (start + end) / 2
    bound = (end - start).norm(dim=-1) / 2 + radius  # (K,)
    centre_sq = (centre * centre).sum(-1, keepdim=True)
    along = centre @ rays.T  # (K, P)
    # The squared distance from the ray's line to the centre loses ~1e-16 of |centre|² to
    # cancellation; the slack keeps the test conservative.
    near = centre_sq - along**2 <= (bound**2).unsqueeze(-1) + 1e-9 * centre_sq
    k, p = near.nonzero(as_tuple=True)
    hits = torch.full(near.shape, float("inf"), dtype=rays.dtype, device=rays.device)
    hits[k, p] = capsule_hits(rays[p], start[k], end[k], radius[k])
    return hits


def capsule_hits(rays: Tensor, start: Tensor, end: Tensor, radius: Tensor) -> Tensor:
    """Distance along each ray to the surface of its own capsule (the closed form).

    Args:
        rays: (..., 3) unit ray directions from the origin.
        start: (..., 3) axis start point of the capsule each ray is cast at (mm).
        end: (..., 3) axis end point.
        radius: (...) radius.

    Returns:
        (...) distance (mm) from the origin to the first hit, ``inf`` on a miss or a hit
        behind the camera.

    Example:
        >>> rays = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
        >>> a = torch.tensor([[-100.0, 0.0, 1000.0]] * 2, dtype=torch.float64)
        >>> capsule_hits(rays, a, a + 200 * rays[1], torch.full((2,), 50.0).double()).tolist()
        [950.0, inf]
    """
    axis = end - start
    axis_sq = (axis * axis).sum(-1)
    axis_dot_ray = (axis * rays).sum(-1)
    axis_dot_origin = -(axis * start).sum(-1)  # ba · (o − a)
    ray_dot_start = (start * rays).sum(-1)
    start_sq = (start * start).sum(-1)
    radius_sq = radius**2
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
    cap_end = _sphere_hit((end * rays).sum(-1), (end * end).sum(-1), radius_sq)
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
