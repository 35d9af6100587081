"""Camera models: the Human3.6M check value, a NumPy reference, broadcasting and torch.func."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.func import jacrev, vmap

from lightning_energy.energies.cameras import (
    distort,
    pixels_to_normalised,
    project_perspective,
    project_weak_perspective,
    undistort,
    world_to_camera,
)
from lightning_energy.errors import ShapeError

REAL_ROOT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "h36m_multiview_sh"


def numpy_project(P, R, T, f, c, k, p):
    """Independent per-point implementation of SOURCE.md's camera model."""
    X = R @ (P - T)
    x, y = X[0] / X[2], X[1] / X[2]
    r2 = x * x + y * y
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = p[0] * y + p[1] * x
    u = f[0] * (x * (radial + tan) + p[1] * r2) + c[0]
    v = f[1] * (y * (radial + tan) + p[0] * r2) + c[1]
    return np.array([u, v]), X[2]


def random_cameras(batch: int, views: int, seed: int) -> dict[str, torch.Tensor]:
    """Cameras on a circle of radius ≈ 5 m, looking at the origin, with H36M-like lenses."""
    gen = torch.Generator().manual_seed(seed)
    angle = torch.rand(batch, views, generator=gen, dtype=torch.float64) * 6.28
    centre = torch.stack((5000 * angle.cos(), 5000 * angle.sin(), 1500 + 0 * angle), -1)
    forward = -centre / centre.norm(dim=-1, keepdim=True)
    down = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64).expand_as(forward)
    right = torch.linalg.cross(down, forward)
    right = right / right.norm(dim=-1, keepdim=True)
    R = torch.stack((right, torch.linalg.cross(forward, right), forward), dim=-2)

    def rand(*shape: int, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(batch, views, *shape, generator=gen, dtype=torch.float64)

    return {"R": R, "T": centre, "f": rand(2, lo=1100, hi=1200), "c": rand(2, lo=480, hi=520),
            "k": rand(3, lo=-0.2, hi=0.2), "p": rand(2, lo=-0.003, hi=0.003)}


def random_points(batch: int, joints: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, joints, 3, generator=gen, dtype=torch.float64) * 400 + torch.tensor(
        [0.0, 0.0, 900.0], dtype=torch.float64
    )


def test_perspective_matches_numpy_reference() -> None:
    cams = random_cameras(3, 4, seed=0)
    points = random_points(3, 17, seed=1)
    uv, depth = project_perspective(points, **cams, return_depth=True)
    assert uv.shape == (3, 4, 17, 2)
    assert depth.shape == (3, 4, 17)
    for b, v, j in [(0, 0, 0), (1, 2, 5), (2, 3, 16), (2, 1, 9)]:
        args = [cams[n][b, v].numpy() for n in ("R", "T", "f", "c", "k", "p")]
        ref_uv, ref_depth = numpy_project(points[b, j].numpy(), *args)
        np.testing.assert_allclose(uv[b, v, j].numpy(), ref_uv, rtol=1e-12)
        assert depth[b, v, j].item() == pytest.approx(ref_depth, rel=1e-12)


def test_perspective_without_distortion_is_pinhole() -> None:
    cams = random_cameras(2, 3, seed=2)
    points = random_points(2, 5, seed=3)
    uv = project_perspective(points, cams["R"], cams["T"], cams["f"], cams["c"])
    X = world_to_camera(points, cams["R"], cams["T"])
    expected = X[..., :2] / X[..., 2:] * cams["f"][:, :, None] + cams["c"][:, :, None]
    torch.testing.assert_close(uv, expected, rtol=1e-12, atol=1e-9)
    distorted = project_perspective(points, **cams)
    assert (distorted - uv).abs().max() > 1.0  # distortion matters at these radii


def test_broadcasting_over_views_and_batch() -> None:
    cams = random_cameras(1, 4, seed=4)
    points = random_points(5, 17, seed=5)
    shared = project_perspective(points, **cams)
    per_view = project_perspective(points.unsqueeze(1).expand(5, 4, 17, 3), **cams)
    assert shared.shape == (5, 4, 17, 2)
    torch.testing.assert_close(shared, per_view, rtol=0, atol=0)
    single = project_perspective(points[3:4], **cams)
    torch.testing.assert_close(shared[3:4], single)
    with pytest.raises(ShapeError, match="points"):
        project_perspective(points[0, 0], **cams)


def test_undistort_inverts_distort() -> None:
    cams = random_cameras(2, 4, seed=6)
    gen = torch.Generator().manual_seed(7)
    xy = (torch.rand(2, 4, 17, 2, generator=gen, dtype=torch.float64) - 0.5) * 0.8
    back = undistort(distort(xy, cams["k"], cams["p"]), cams["k"], cams["p"], iterations=30)
    torch.testing.assert_close(back, xy, rtol=0, atol=1e-12)
    uv = project_perspective(random_points(2, 17, 8), **cams)
    normalised = pixels_to_normalised(uv, cams["f"], cams["c"], cams["k"], cams["p"], 30)
    X = world_to_camera(random_points(2, 17, 8), cams["R"], cams["T"])
    torch.testing.assert_close(normalised, X[..., :2] / X[..., 2:], rtol=0, atol=1e-12)


def test_torch_func_compatible_and_gradients_match_finite_differences() -> None:
    cams = random_cameras(3, 4, seed=9)
    points = random_points(3, 2, seed=10)

    def project_one(x: torch.Tensor, rig: dict[str, torch.Tensor]) -> torch.Tensor:
        one = {n: t.unsqueeze(0) for n, t in rig.items()}
        return project_perspective(x.reshape(1, 2, 3), **one).reshape(-1)

    jac = vmap(jacrev(project_one))(points.reshape(3, 6), cams)
    assert jac.shape == (3, 16, 6)
    x = points.reshape(3, 6)[1].clone().requires_grad_(True)
    rig1 = {n: t[1] for n, t in cams.items()}
    reference = torch.autograd.functional.jacobian(lambda y: project_one(y, rig1), x)
    torch.testing.assert_close(jac[1], reference)
    assert torch.autograd.gradcheck(lambda y: project_one(y, rig1), (x,))
    focal = cams["f"].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda f: project_perspective(points, cams["R"], cams["T"], f, cams["c"], cams["k"]),
        (focal,),
    )


def test_weak_perspective_matches_numpy() -> None:
    cams = random_cameras(2, 4, seed=11)
    points = random_points(2, 17, seed=12)
    scale = torch.tensor([[1.0, 2.0, 0.5, 3.0]], dtype=torch.float64)
    offset = torch.arange(8, dtype=torch.float64).reshape(1, 4, 2)
    uv = project_weak_perspective(points, cams["R"], scale, offset)
    R, P = cams["R"].numpy(), points.numpy()
    ref = np.einsum("bcij,bnj->bcni", R[:, :, :2], P) * scale.numpy()[:, :, None, None]
    np.testing.assert_allclose(uv.numpy(), ref + offset.numpy()[:, :, None], rtol=1e-12)
    plain = project_weak_perspective(points, cams["R"][:, :, :2])
    np.testing.assert_allclose(plain.numpy(), np.einsum("bcij,bnj->bcni", R[:, :, :2], P))


needs_real = pytest.mark.skipif(
    not (REAL_ROOT / "cameras.json").is_file(), reason=f"Human3.6M not staged at {REAL_ROOT}"
)


@needs_real
def test_h36m_check_value() -> None:
    cam = json.loads((REAL_ROOT / "cameras.json").read_text())["subjects"]["S1"][0]
    assert cam["camera_id"] == "54138969"
    with np.load(REAL_ROOT / "S1" / "Directions.npz") as data:
        hip = torch.as_tensor(data["joints3d_world"][0, 0], dtype=torch.float64)
        detection = data["joints2d_sh"][0, 0, 0]
    np.testing.assert_allclose(hip.numpy(), [-64.02, 234.29, 936.80], atol=0.01)
    rig = {
        name: torch.tensor([[cam[key]]], dtype=torch.float64)
        for name, key in (("R", "R_world_to_camera"), ("T", "T_camera_centre_world_mm"),
                          ("f", "f"), ("c", "c"), ("k", "k"), ("p", "p"))
    }
    uv, depth = project_perspective(hip.reshape(1, 1, 3), **rig, return_depth=True)
    np.testing.assert_allclose(uv.reshape(2).numpy(), [474.7, 440.8], atol=0.05)
    assert depth.item() == pytest.approx(5115.6, abs=0.05)
    assert np.linalg.norm(uv.reshape(2).numpy() - detection) < 15
