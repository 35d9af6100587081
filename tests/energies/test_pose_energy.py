"""The multi-view PPCA pose energy: gradients, kernel structure, cameras and initialisation."""

from __future__ import annotations

import math

import pytest
import torch

import lightning_energy as le
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.energies.pose import (
    MultiViewPoseEnergy,
    axis_angle_to_matrix,
    pose_energy_inputs,
    yaw_offsets,
)
from lightning_energy.testing import check_energy, check_gauss_newton_system, check_jacobian


def _inputs(frames: int = 3, noise_px: float = 2.0, components: int = 1, seed: int = 0):
    arrays = generate_synthetic_poses(frames, seed=seed, noise_px=noise_px)
    batch = arrays.to_batch(dtype=torch.float64)
    return batch, pose_energy_inputs(batch, components)


@pytest.mark.parametrize(
    "projection", ["perspective", pytest.param("weak_perspective", marks=pytest.mark.slow)]
)
def test_implicit_gradients_match_finite_differences(projection: str) -> None:
    energy = MultiViewPoseEnergy(None, num_components=2, num_bases=3, projection=projection)
    with torch.no_grad():  # non-trivial parameters so that every group matters
        energy.camera_rotation.add_(0.01)
        energy.log_weights.add_(0.1 * torch.randn_like(energy.log_weights))
    _, inputs = _inputs(frames=1, components=2)
    solver = le.LevenbergMarquardt(max_steps=100, tol=1e-10, dtype="float64")
    report = check_energy(energy, inputs, solver=solver, tol=1e-4)
    assert report.grad_norm < 1e-8
    assert report.param_error < 1e-4
    assert report.input_error < 1e-4


@pytest.mark.parametrize("projection", ["perspective", "weak_perspective"])
def test_closed_form_jacobian_matches_autograd(projection: str) -> None:
    energy = MultiViewPoseEnergy(None, num_components=2, num_bases=3, projection=projection)
    with torch.no_grad():  # every group away from its neutral value
        energy.camera_rotation.add_(0.01)
        energy.log_weights.add_(0.1 * torch.randn_like(energy.log_weights))
        energy.log_scale_offset.add_(0.1)
        energy.log_std.add_(0.2)
    arrays = generate_synthetic_poses(3, seed=1, noise_px=2.0, dropout_prob=0.2)
    inputs = pose_energy_inputs(arrays.to_batch(dtype=torch.float64), 2)
    assert not bool(inputs.visible.all())  # dropped detections are in the check
    jac_error, param_error = check_jacobian(energy, inputs, tol=1e-12)
    assert jac_error < 1e-12
    assert param_error < 1e-12


@pytest.mark.parametrize("projection", ["perspective", "weak_perspective"])
def test_gauss_newton_system_matches_autograd(projection: str) -> None:
    """Catches: a wrong per-joint block, prior diagonal or robust weight in the system that
    never forms J, and a system that unrolled differentiation cannot differentiate."""
    energy = MultiViewPoseEnergy(None, num_components=2, num_bases=3, projection=projection,
                                 kernel_scale=0.3)  # small δ: the robust weights are not 1
    with torch.no_grad():  # every group away from its neutral value
        energy.camera_rotation.add_(0.01)
        energy.log_weights.add_(0.1 * torch.randn_like(energy.log_weights))
        energy.log_scale_offset.add_(0.1)
        energy.log_std.add_(0.2)
        energy.log_prior.add_(0.3)
        energy.log_scale_prior.sub_(0.4)
    arrays = generate_synthetic_poses(3, seed=1, noise_px=2.0, dropout_prob=0.2)
    inputs = pose_energy_inputs(arrays.to_batch(dtype=torch.float64), 2)
    assert not bool(inputs.visible.all())
    error, param_error = check_gauss_newton_system(energy, inputs, tol=1e-12)
    assert error < 1e-12
    assert param_error < 1e-12
    _, _, confident = _confident_inputs(components=2)
    error, _ = check_gauss_newton_system(energy, confident, tol=1e-12)
    assert error < 1e-12


def test_closed_forms_run_under_vmap_over_a_parameter() -> None:
    """Catches: derivatives written into a buffer in place, which vmap over parameters with an
    unbatched x cannot do (the `Energy` contract: compatible with torch.func)."""
    energy = MultiViewPoseEnergy(None, num_components=2, num_bases=3).double()
    _, inputs = _inputs(frames=2, components=2)
    x = energy.initial_solution(inputs).double()
    params = dict(energy.named_parameters())
    priors = torch.stack([params["log_prior"], params["log_prior"] + 0.5])

    class ClosedForms(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.energy = energy

        def forward(self, x, inputs):
            return (self.energy.residuals_and_jacobian(x, inputs)[1],
                    self.energy.gauss_newton_system(x, inputs)[2])

    def closed_forms(log_prior):
        state = {f"energy.{k}": v for k, v in {**params, "log_prior": log_prior}.items()}
        return torch.func.functional_call(ClosedForms(), state, (x, inputs))

    jacobians, systems = torch.func.vmap(closed_forms)(priors)
    for i, log_prior in enumerate(priors):
        with torch.no_grad():
            energy.log_prior.copy_(log_prior)
        torch.testing.assert_close(jacobians[i], energy.residuals_and_jacobian(x, inputs)[1])
        torch.testing.assert_close(systems[i], energy.gauss_newton_system(x, inputs)[2])


def test_energy_is_robust_on_joint_norms_and_plain_on_priors() -> None:
    energy = MultiViewPoseEnergy(None, num_components=1, kernel_scale=1.5).double()
    _, inputs = _inputs()
    x = energy.initial_solution(inputs) + 0.1
    r = energy.residuals(x, inputs)
    m = 4 * 17 * 2
    joint = r[:, :m].reshape(3, -1, 2).square().sum(-1)
    d2 = 1.5**2
    expected = 0.5 * (2 * d2 * (torch.sqrt(1 + joint / d2) - 1)).sum(-1)
    expected = expected + 0.5 * r[:, m:].square().sum(-1)
    torch.testing.assert_close(energy(x, inputs), expected)


def test_axis_angle_is_a_rotation_and_matches_matrix_exp() -> None:
    omega = torch.tensor([[0.3, -0.2, 0.5], [0.0, 0.0, 0.0]], dtype=torch.float64)
    rot = axis_angle_to_matrix(omega)
    zero = torch.zeros(2, dtype=torch.float64)
    skew = torch.stack([torch.stack([zero, -omega[:, 2], omega[:, 1]], -1),
                        torch.stack([omega[:, 2], zero, -omega[:, 0]], -1),
                        torch.stack([-omega[:, 1], omega[:, 0], zero], -1)], -2)
    torch.testing.assert_close(rot, torch.linalg.matrix_exp(skew))
    torch.testing.assert_close(rot @ rot.mT, torch.eye(3, dtype=torch.float64).expand(2, 3, 3))


def test_initial_solution_recovers_yaw_and_centroid() -> None:
    batch, inputs = _inputs(frames=4, noise_px=0.0)
    energy = MultiViewPoseEnergy(None, num_components=1)
    x0 = energy.initial_solution(inputs)
    nb = energy.num_bases
    detected = [j for j in range(17) if j != 9]
    centre = batch.joints3d[:, detected].mean(1) / 1000.0
    torch.testing.assert_close(x0[:, nb + 1 : nb + 4], centre, atol=1e-3, rtol=0)
    hips = batch.joints3d[:, 1] - batch.joints3d[:, 4]
    yaw = torch.atan2(hips[:, 1], hips[:, 0])
    assert torch.allclose(torch.remainder(x0[:, nb] - yaw + math.pi, 2 * math.pi),
                          torch.full_like(yaw, math.pi), atol=1e-3)


def test_untrained_energy_recovers_clean_synthetic_poses() -> None:
    batch, inputs = _inputs(frames=8, noise_px=0.0)
    energy = MultiViewPoseEnergy(None, num_components=1, prior_weight=1e-3).double()
    solver = le.MultiStart(le.LevenbergMarquardt(max_steps=50, tol=1e-8, dtype="float64"),
                           yaw_offsets(energy.num_bases, [0.0, math.pi]))
    with torch.no_grad():
        solution = le.EnergyLayer(energy, solver)(inputs)
        pose = 1000.0 * energy.pose(solution.x, inputs.component)
    error = (pose - batch.joints3d).norm(dim=-1).mean()
    assert error < 10.0  # mm; swaps/dropouts at 1% can cost a few mm on a frame


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"learn": ["colour"]}, "learn"), ({"projection": "fisheye"}, "projection"),
     ({"pixel_scale": 0.0}, "pixel_scale")],
)
def test_bad_arguments_name_the_argument(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        MultiViewPoseEnergy(None, num_components=1, **kwargs)


def test_learn_switches_parameters_and_buffers() -> None:
    energy = MultiViewPoseEnergy(None, num_components=1, learn=["weights", "kernel"])
    names = {n for n, _ in energy.named_parameters()}
    assert names == {"log_weights", "kernel.log_scale"}
    assert "mean" in dict(energy.named_buffers())


def _confident_inputs(components: int = 2):
    batch, _ = _inputs(frames=2, components=components, seed=3)
    gen = torch.Generator().manual_seed(4)
    confidence = 0.2 + 0.8 * torch.rand(batch.visible.shape, generator=gen, dtype=torch.float64)
    return batch, confidence, pose_energy_inputs(batch, components, confidence)


def test_confidence_scales_each_detections_residual() -> None:
    """Catches: a confidence that is ignored, applied twice, or to the wrong view or joint."""
    energy = MultiViewPoseEnergy(None, num_components=2, num_bases=3).double()
    batch, confidence, weighted = _confident_inputs()
    plain = pose_energy_inputs(batch, 2)
    x = energy.initial_solution(plain)
    ratio = energy.residuals(x, weighted)[:, : 4 * 17 * 2] / energy.residuals(x, plain)[:, :136]
    expected = confidence.repeat_interleave(2, dim=0)[..., None].expand(-1, -1, -1, 2)
    seen = plain.visible[..., None].expand(-1, -1, -1, 2).reshape(ratio.shape)
    torch.testing.assert_close(ratio[seen], expected.reshape(ratio.shape)[seen])
    ones = pose_energy_inputs(batch, 2, torch.ones_like(confidence))
    torch.testing.assert_close(energy.residuals(x, ones), energy.residuals(x, plain))


def test_confidence_gradient_and_closed_form_jacobian() -> None:
    """Catches: a closed-form Jacobian without the confidence, or no gradient reaching it."""
    energy = MultiViewPoseEnergy(None, num_components=1, num_bases=3)
    _, _, inputs = _confident_inputs(components=1)
    jac_error, _ = check_jacobian(energy, inputs, tol=1e-12)
    assert jac_error < 1e-12
    solver = le.LevenbergMarquardt(max_steps=100, tol=1e-10, dtype="float64")
    report = check_energy(energy, inputs, solver=solver, tol=1e-4)
    assert report.input_error < 1e-4  # along a direction that moves the confidences too


def test_confidence_of_the_wrong_shape_is_named() -> None:
    batch, confidence, _ = _confident_inputs()
    with pytest.raises(le.ShapeError, match="confidence"):
        pose_energy_inputs(batch, 2, confidence[:, :3])
