"""DLT triangulation: exact on noise-free data, ignores invisible views, NaN below two views."""

from __future__ import annotations

import pytest
import torch
from test_cameras import random_cameras, random_points

from lightning_energy.energies.cameras import project_perspective
from lightning_energy.energies.triangulation import triangulate_dlt
from lightning_energy.errors import ShapeError


def _relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    return float(((estimate - truth).norm(dim=-1) / truth.norm(dim=-1)).max())


def test_exact_recovery_pinhole() -> None:
    cams = random_cameras(6, 4, seed=0)
    points = random_points(6, 17, seed=1)
    uv = project_perspective(points, cams["R"], cams["T"], cams["f"], cams["c"])
    visible = torch.ones(6, 4, 17, dtype=torch.bool)
    estimate = triangulate_dlt(uv, visible, cams["R"], cams["T"], cams["f"], cams["c"])
    assert estimate.shape == (6, 17, 3)
    assert _relative_error(estimate, points) < 1e-6


def test_exact_recovery_with_distortion_undone() -> None:
    cams = random_cameras(4, 4, seed=2)
    points = random_points(4, 17, seed=3)
    uv = project_perspective(points, **cams)
    visible = torch.ones(4, 4, 17, dtype=torch.bool)
    estimate = triangulate_dlt(uv, visible, **cams, undistort_iterations=30)
    assert _relative_error(estimate, points) < 1e-6
    ignoring = triangulate_dlt(uv, visible, cams["R"], cams["T"], cams["f"], cams["c"])
    assert _relative_error(ignoring, points) > 1e-4  # distortion is not negligible here


def test_invisible_views_are_ignored_and_too_few_give_nan() -> None:
    cams = random_cameras(3, 4, seed=4)
    points = random_points(3, 5, seed=5)
    uv = project_perspective(points, cams["R"], cams["T"], cams["f"], cams["c"])
    visible = torch.ones(3, 4, 5, dtype=torch.bool)
    visible[0, :2, 1] = False  # two views left
    visible[1, 1:, 2] = False  # one view left
    visible[2, :, 3] = False  # none
    corrupted = torch.where(visible.unsqueeze(-1), uv, torch.full_like(uv, float("nan")))
    corrupted[0, 0, 1] = 1e6  # garbage in an invisible view
    estimate = triangulate_dlt(corrupted, visible, cams["R"], cams["T"], cams["f"], cams["c"])
    assert torch.isnan(estimate[1, 2]).all()
    assert torch.isnan(estimate[2, 3]).all()
    finite = ~torch.isnan(estimate[..., 0])
    assert int(finite.sum()) == 15 - 2
    assert _relative_error(estimate[finite], points[finite]) < 1e-6


def test_batch_samples_are_independent_and_rig_broadcasts() -> None:
    cams = random_cameras(1, 4, seed=6)
    points = random_points(5, 17, seed=7)
    uv = project_perspective(points, cams["R"], cams["T"], cams["f"], cams["c"])
    gen = torch.Generator().manual_seed(8)
    noisy = uv + 3 * torch.randn(uv.shape, generator=gen, dtype=torch.float64)
    visible = torch.ones(5, 4, 17, dtype=torch.bool)
    rig = (cams["R"], cams["T"], cams["f"], cams["c"])
    together = triangulate_dlt(noisy, visible, *rig)
    alone = triangulate_dlt(noisy[2:3], visible[2:3], *rig)
    torch.testing.assert_close(together[2:3], alone)
    error = (together - points).norm(dim=-1).mean()
    assert 1.0 < error < 40.0  # 3 px of noise at 5 m: centimetres, not exact, not wild


def test_shape_errors() -> None:
    cams = random_cameras(2, 4, seed=9)
    uv = torch.zeros(2, 4, 17, 2, dtype=torch.float64)
    visible = torch.ones(2, 3, 17, dtype=torch.bool)
    with pytest.raises(ShapeError, match="Expected `joints2d` of shape"):
        triangulate_dlt(uv, visible, cams["R"], cams["T"], cams["f"], cams["c"])
