"""PPCA model and trained-parameter loading (real files when staged), and the closed-form fit."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_energy.baselines.authors import load_authors_trained, load_avg_cameras
from lightning_energy.baselines.ppca import fit_ppca
from lightning_energy.energies.ppca import (
    DEFAULT_PPCA_ROOT,
    PPCAModel,
    canonicalise_poses,
    load_ppca,
    tiny_pose_model,
    yaw_rotation,
)
from lightning_energy.errors import DatasetNotFoundError, ShapeError

REAL_ROOT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wibergian_ppca"
needs_real = pytest.mark.skipif(
    not (REAL_ROOT / "model_parameters.h5").is_file(),
    reason=f"PPCA files not staged at {REAL_ROOT}",
)


def _flat_gram(bases: torch.Tensor) -> torch.Tensor:
    flat = bases.reshape(*bases.shape[:2], -1)
    return flat @ flat.transpose(-1, -2)


@needs_real
@pytest.mark.parametrize("components", [3, 6, 10])
def test_load_ppca_orthonormal_and_centred(components: int) -> None:
    model = load_ppca(REAL_ROOT, components)
    assert model.mean.shape == (components, 17, 3)
    assert model.bases.shape == (components, 25, 17, 3)
    assert model.sigma.shape == (components, 25)
    eye = torch.eye(25, dtype=torch.float64).expand(components, 25, 25)
    assert (_flat_gram(model.bases) - eye).abs().max() < 1e-10
    assert model.mean.mean(dim=1).abs().max() < 1e-6
    assert (model.sigma > 0).all()
    assert (model.scale > model.sigma.max(dim=1).values).all()


@needs_real
def test_load_ppca_is_joint_major() -> None:
    import h5py

    model = load_ppca(REAL_ROOT, 3)
    with h5py.File(REAL_ROOT / "model_parameters.h5") as handle:
        mu, sigma = handle["mu_3"][()], handle["sigma_3"][()]
    np.testing.assert_array_equal(model.mean[1, 3].numpy(), mu[1, :, 3])
    np.testing.assert_array_equal(model.scale.numpy(), sigma[:, 25])
    # Canonical frame: right hip at +x, feet at z ≈ −785 mm, head at z ≈ +531 mm.
    assert (model.mean[:, 1, 0] > 0).all()
    assert model.mean[0, 3, 2] < -700
    assert model.mean[0, 10, 2] > 500


@needs_real
def test_load_authors_trained_undoes_scalings() -> None:
    trained = load_authors_trained(REAL_ROOT)
    assert trained.mod_mu == pytest.approx(154.835, abs=1e-3)
    assert trained.mod_e == pytest.approx(0.094609, abs=1e-6)
    assert trained.epoch == 6
    assert trained.mean.shape == (3, 17, 3)
    assert trained.bases.shape == (3, 25, 17, 3)
    ppca = load_ppca(REAL_ROOT, 3)
    similarity = torch.nn.functional.cosine_similarity(
        trained.mean.reshape(3, -1), ppca.mean.reshape(3, -1), dim=-1
    )
    assert (similarity > 0.7).all()  # mm-scale poses resembling the untrained means
    # Effective cameras: rows 0–1 about 11 × a rotation row, near-orthogonal.
    rows = trained.cameras[:, :2]
    assert ((rows.norm(dim=-1) - 11.5).abs() < 2).all()
    effective = trained.camera_multipliers * load_avg_cameras(REAL_ROOT)
    torch.testing.assert_close(trained.cameras, effective)
    assert torch.equal(trained.joint_weights[:, 9], torch.ones(3, 2, dtype=torch.float64))
    assert trained.prior_matrix.shape == (3, 29, 29)
    torch.testing.assert_close(trained.huber_delta, 0.1 * trained.hl_params)


@needs_real
def test_avg_cameras_are_near_rotations() -> None:
    cams = load_avg_cameras(REAL_ROOT)
    eye = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    assert (cams @ cams.transpose(-1, -2) - eye).abs().max() < 1e-3


def test_missing_files_name_default_root(tmp_path: Path) -> None:
    for loader in (load_ppca, load_avg_cameras, load_authors_trained):
        with pytest.raises(DatasetNotFoundError, match=DEFAULT_PPCA_ROOT):
            loader(tmp_path)


def _planted(num_components: int, std_mm: float, seed: int) -> PPCAModel:
    model = tiny_pose_model(num_bases=4, num_components=num_components, seed=seed)
    std = std_mm * torch.tensor([1.0, 0.7, 0.5, 0.35], dtype=torch.float64)
    model.sigma = (1 / std).expand(num_components, 4).clone()
    return model


def _sample(model: PPCAModel, n: int, noise_mm: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    component = torch.arange(n) % model.num_components
    coefficients = torch.randn(n, model.num_bases, generator=gen, dtype=torch.float64)
    poses = model.reconstruct(coefficients * model.coefficient_std[component], component)
    return poses + noise_mm * torch.randn(poses.shape, generator=gen, dtype=torch.float64)


def _subspace_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    pa, pb = (x.reshape(x.shape[0], -1) for x in (a, b))
    return float((pa.T @ pa - pb.T @ pb).norm() / math.sqrt(pa.shape[0]))


def test_fit_ppca_recovers_planted_model() -> None:
    planted = _planted(1, 200.0, seed=3)
    fitted = fit_ppca(_sample(planted, 20_000, noise_mm=2.0, seed=0), num_bases=4)
    assert _subspace_gap(fitted.bases[0], planted.bases[0]) < 0.02
    torch.testing.assert_close(fitted.mean, planted.mean, atol=5.0, rtol=0)
    torch.testing.assert_close(fitted.sigma, planted.sigma, rtol=0.03, atol=0)
    assert fitted.scale[0].item() == pytest.approx(1 / 2.0, rel=0.03)
    assert (_flat_gram(fitted.bases) - torch.eye(4, dtype=torch.float64)).abs().max() < 1e-10


def test_fit_ppca_mixture_finds_components() -> None:
    planted = _planted(2, 30.0, seed=5)
    fitted = fit_ppca(_sample(planted, 4000, noise_mm=1.0, seed=1), num_bases=4, num_components=2)
    match = [int((fitted.mean - m).norm(dim=-1).mean(-1).argmin()) for m in planted.mean]
    assert sorted(match) == [0, 1]
    for planted_m, fitted_m in enumerate(match):
        gap = (fitted.mean[fitted_m] - planted.mean[planted_m]).norm(dim=-1).mean()
        assert gap < 5.0
        assert _subspace_gap(fitted.bases[fitted_m], planted.bases[planted_m]) < 0.05
    again = fit_ppca(_sample(planted, 4000, noise_mm=1.0, seed=1), num_bases=4, num_components=2)
    assert torch.equal(again.mean, fitted.mean)  # seeded


def test_fit_ppca_rejects_bad_arguments() -> None:
    poses = torch.randn(10, 17, 3, dtype=torch.float64)
    with pytest.raises(ShapeError, match="num_bases"):
        fit_ppca(poses, num_bases=48)
    with pytest.raises(ValueError, match="need more than"):
        fit_ppca(poses, num_bases=12)


def test_canonicalise_poses_inverts_yaw_and_translation() -> None:
    canonical = tiny_pose_model().mean[0]  # hip line along +x
    yaw = torch.tensor([0.3, -2.0, 3.0], dtype=torch.float64)
    centre = torch.tensor([[100.0, -50.0, 900.0]], dtype=torch.float64)
    world = canonical @ yaw_rotation(yaw).transpose(-1, -2) + centre.unsqueeze(1)
    back, found_yaw, found_centre = canonicalise_poses(world)
    torch.testing.assert_close(back, canonical.expand(3, 17, 3))
    torch.testing.assert_close(found_yaw, yaw)
    torch.testing.assert_close(found_centre, centre.expand(3, 3))
