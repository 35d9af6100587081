"""Ray casting of capsules: the closed form against marching along the ray, and the culling."""

from __future__ import annotations

import torch

from lightning_energy.datasets.raycast import capsule_hits, intersect_capsules, nearest_surface


def _scene(k: int, p: int, seed: int, spread: float = 300.0) -> tuple[torch.Tensor, ...]:
    """Capsules 2–5 m in front of the camera and rays aimed near them (hits, misses, grazes)."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.rand(k, 3, generator=gen, dtype=torch.float64) * torch.tensor(
        [800.0, 800.0, 3000.0], dtype=torch.float64) + torch.tensor(
        [-400.0, -400.0, 2000.0], dtype=torch.float64)  # fmt: skip
    direction = torch.randn(k, 3, generator=gen, dtype=torch.float64)
    half = 50 + 200 * torch.rand(k, 1, generator=gen, dtype=torch.float64)
    start = centre - half * direction / direction.norm(dim=-1, keepdim=True)
    end = centre + half * direction / direction.norm(dim=-1, keepdim=True)
    radius = 20 + 60 * torch.rand(k, generator=gen, dtype=torch.float64)
    target = centre[torch.randint(k, (p,), generator=gen)] + spread * torch.randn(
        p, 3, generator=gen, dtype=torch.float64)  # fmt: skip
    rays = target / target.norm(dim=-1, keepdim=True)
    return rays, start, end, radius


def _segment_distance(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    axis = end - start
    s = (((points - start) * axis).sum(-1) / (axis * axis).sum(-1)).clamp(0, 1)
    return (points - start - s.unsqueeze(-1) * axis).norm(dim=-1)


def _marched(ray: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
             radius: float) -> tuple[float, float]:
    """First crossing of the capsule's surface by stepping 0.5 mm along the ray, then bisecting.

    Returns it (inf where no step lands inside) and the smallest gap between the stepped
    points and the surface (a ray that grazes the capsule by less than a step may be missed).
    """
    t = torch.arange(0.0, 9000.0, 0.5, dtype=torch.float64)
    gap = _segment_distance(t.unsqueeze(-1) * ray, start, end) - radius
    inside = gap <= 0
    if not bool(inside.any()):
        return float("inf"), float(gap.min())
    first = int(inside.nonzero()[0])
    lo, hi = float(t[first - 1]), float(t[first])
    for _ in range(60):
        mid = (lo + hi) / 2
        if float(_segment_distance(mid * ray, start, end)) <= radius:
            hi = mid
        else:
            lo = mid
    return hi, float(gap.min())


def test_closed_form_matches_marching_along_the_ray():
    rays, start, end, radius = _scene(6, 60, seed=0, spread=100.0)
    hits = intersect_capsules(rays, start, end, radius)
    checked = hit_count = 0
    for k in range(start.shape[0]):
        for p in range(rays.shape[0]):
            marched, gap = _marched(rays[p], start[k], end[k], float(radius[k]))
            if abs(gap) < 0.5 and torch.isfinite(hits[k, p]) != (marched != float("inf")):
                continue  # a graze shorter than a marching step
            checked += 1
            if marched == float("inf"):
                assert torch.isinf(hits[k, p]), (k, p, hits[k, p])
            else:
                hit_count += 1
                assert abs(float(hits[k, p]) - marched) < 1e-6 * marched, (k, p, marched)
    assert checked > 300  # both hits and misses were tested
    assert 30 < hit_count < checked - 30


def test_culling_drops_only_misses():
    """The bounding-sphere test keeps every pair that the closed form says is a hit."""
    rays, start, end, radius = _scene(24, 4000, seed=1)
    culled = intersect_capsules(rays, start, end, radius)
    every_pair = capsule_hits(rays.unsqueeze(0), start.unsqueeze(1), end.unsqueeze(1),
                              radius.unsqueeze(1))  # fmt: skip
    assert torch.isfinite(every_pair).sum() > 1000
    assert torch.equal(culled, every_pair)


def test_culling_keeps_rays_that_graze_the_bounding_sphere():
    """A capsule of zero length is its own bounding sphere: its rim's rays must survive."""
    centre = torch.tensor([[120.0, -80.0, 3000.0]], dtype=torch.float64)
    radius = torch.tensor([100.0], dtype=torch.float64)
    # Rays whose distance to the centre is 100 (1 − 10⁻ᵉ) mm, e = 2 … 13.
    to_centre = centre[0] / centre[0].norm()
    side = torch.linalg.cross(to_centre, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    side = side / side.norm()
    miss = 100 * (1 - 10.0 ** -torch.arange(2.0, 14.0, dtype=torch.float64))
    angle = torch.asin(miss / centre[0].norm())
    rays = to_centre * angle.cos().unsqueeze(-1) + side * angle.sin().unsqueeze(-1)
    hits = intersect_capsules(rays, centre, centre, radius)[0]
    assert torch.isfinite(hits).all(), hits
    torch.testing.assert_close(hits, capsule_hits(rays, centre, centre, radius))


def test_nearest_surface_is_the_z_buffer_of_the_hits():
    rays, start, end, radius = _scene(8, 500, seed=2)
    index, distance, normal = nearest_surface(rays, start, end, radius)
    hits = intersect_capsules(rays, start, end, radius)
    assert torch.equal(distance, hits.min(0).values)
    found = torch.isfinite(distance)
    assert found.sum() > 50
    assert (~found).sum() > 50
    assert torch.equal(index[found], hits.argmin(0)[found])
    assert (index[~found] == -1).all()
    # The normal at a hit points from the nearest axis point to the hit, at the radius.
    points = rays[found] * distance[found].unsqueeze(-1)
    k = index[found]
    gap = _segment_distance(points, start[k], end[k])
    torch.testing.assert_close(gap, radius[k], rtol=1e-9, atol=1e-6)
    torch.testing.assert_close(normal[found].norm(dim=-1), torch.ones(int(found.sum()),
                               dtype=torch.float64))  # fmt: skip
    assert (normal[~found] == 0).all()
