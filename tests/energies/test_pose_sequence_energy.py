"""The sequence pose energy: block-arrow derivatives, kernels, padding and ablation switches."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from lightning_energy._tree import tree_map
from lightning_energy.datasets.pose_synthetic import generate_synthetic_sequences
from lightning_energy.datasets.pose_windows import (
    PoseWindows,
    collate_windows,
    covering_windows,
    sequence_runs,
)
from lightning_energy.energies.pose import MultiViewPoseEnergy, pose_energy_inputs
from lightning_energy.energies.pose_sequence import SequencePoseEnergy, SequencePoseInputs
from lightning_energy.energies.sequence import SequenceLeastSquaresEnergy
from lightning_energy.solvers.problem import Problem

F64 = torch.float64


def window_inputs(t: int = 4, frames: int = 9) -> SequencePoseInputs:
    arrays = generate_synthetic_sequences(2, frames, seed=3)
    data = PoseWindows(arrays, covering_windows(sequence_runs(arrays), t, min(1, t - 1)))
    batch = collate_windows([data[i] for i in range(min(3, len(data)))])
    b = batch.real.shape[0]
    problems = pose_energy_inputs(batch.frames.to(dtype=F64), 1)
    frames = tree_map(lambda x: x.reshape(b, t, *x.shape[1:]), problems)
    return SequencePoseInputs(frames, batch.real.to(F64))


def energy(**kwargs) -> SequencePoseEnergy:
    return SequencePoseEnergy(MultiViewPoseEnergy(None, num_components=1), **kwargs).double()


@pytest.mark.parametrize("kwargs", [{}, {"body": "none"}, {"smoothness_weight": 0.0}])
def test_block_arrow_derivatives_equal_dense_autograd(kwargs):
    """Faulty variant: the smoothness kernel's weights spread over one row of a joint's three."""
    e, inputs = energy(**kwargs), window_inputs()
    x = e.initial_solution(inputs)
    x = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    problem = Problem(e, inputs, x.shape[1:], F64)
    value, grad, gauss_newton = problem.gauss_newton(x)
    value2, grad2, blocks = e.gauss_newton_block_arrow(x, inputs)
    exact = problem.hessian(x)
    scale = gauss_newton.abs().max()
    assert torch.allclose(value2, value, rtol=1e-12)
    # the IRLS gradient Jᵀ(ρ' r) is the energy's true gradient: rho and weights agree
    assert (grad2 - problem.gradient(x)).abs().max() <= 1e-9 * (1 + grad.abs().max())
    assert (blocks.dense() - gauss_newton).abs().max() <= 1e-10 * scale
    assert (e.hessian_block_arrow(x, inputs).dense() - exact).abs().max() <= 1e-9 * scale


@pytest.mark.parametrize("projection", ["perspective", "weak_perspective"])
@pytest.mark.parametrize("kwargs", [{}, {"body": "none"}, {"smoothness_weight": 0.0}])
@pytest.mark.parametrize("t", [1, 4])
def test_closed_form_blocks_equal_coloured_products(kwargs, projection, t):
    """Faulty variant: the offset columns' yaw rotation transposed (R(−yaw) for R(yaw))."""
    frame = MultiViewPoseEnergy(None, num_components=1, projection=projection)
    e = SequencePoseEnergy(frame, **kwargs).double()
    inputs = window_inputs(t=t, frames=3)  # t = 4: 3 real frames + 1 padding per window
    assert t == 1 or not bool(inputs.frame_weight.bool().all())
    x = e.initial_solution(inputs)
    x = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    closed_residuals, closed = e.jacobian_blocks(x, inputs)
    e.closed_form_jacobian = False
    residuals, coloured = e._jacobian_blocks(x, inputs)
    for got, want in zip(closed_residuals + closed, residuals + coloured, strict=True):
        assert got.shape == want.shape
        if want.numel():
            assert (got - want).abs().max() <= 1e-12 * (1 + want.abs().max())


def test_overrides_fall_back_to_automatic_derivatives():
    """Faulty variant: the closed forms used whatever a subclass overrides (its prior and kernel
    ignored in J_u and M)."""

    class Heavier(SequencePoseEnergy):
        def shared_residuals(self, shared, inputs):
            return 3.0 * super().shared_residuals(shared, inputs)

        def weights(self, squared):  # another kernel (its ρ is irrelevant to M)
            return super().weights(squared) / (1 + squared)

    e = Heavier(MultiViewPoseEnergy(None, num_components=1)).double()
    inputs = window_inputs()
    x = e.initial_solution(inputs)
    x = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    got = e.jacobian_blocks(x, inputs)
    want = SequenceLeastSquaresEnergy.jacobian_blocks(e, x, inputs)
    for a, b in zip(got[0] + got[1], want[0] + want[1], strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    r = e.residuals(x, inputs)
    tangents = torch.randn(3, *r.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    assert torch.allclose(e.curvature_products(r, tangents),
                          SequenceLeastSquaresEnergy.curvature_products(e, r, tangents),
                          rtol=1e-12, atol=1e-12)


def test_switches_set_the_structure():
    inputs = window_inputs()
    full, no_body, no_smooth = energy(), energy(body="none"), energy(smoothness_weight=0.0)
    assert (full.frame_size, full.shared_size) == (11, 51)
    assert no_body.shared_size == 0
    frames, shared = full.split(full.initial_solution(inputs))
    assert no_smooth.pair_residuals(frames, shared, inputs).shape[-1] == 0
    assert full.pair_residuals(frames, shared, inputs).shape == (3, 3, 51)
    with pytest.raises(ValueError, match="`body`"):
        energy(body="bones")


def test_padding_frames_carry_no_data():
    """Faulty variant: the frame weight ignored, a padded copy counting its detections twice."""
    e, inputs = energy(), window_inputs(t=4, frames=3)  # windows of 3 real frames + 1 padding
    x = e.initial_solution(inputs)
    frames, shared = e.split(x)
    r = e.frame_residuals(frames, shared, inputs)
    padded = ~inputs.frame_weight.bool()
    assert bool(padded.any())
    assert r[padded].abs().max() == 0
    assert r[~padded].abs().max() > 0


def test_body_offsets_move_every_frame_alike_in_the_body_frame():
    e, inputs = energy(), window_inputs()
    x = e.initial_solution(inputs)
    frames, shared = e.split(x)
    lifted = shared.clone().reshape(3, 17, 3)
    lifted[..., 2] += 0.01  # 1 cm up in the body frame: up in the world (yaw is about z)
    before = e.poses(frames, shared, inputs)
    after = e.poses(frames, lifted.reshape(3, 51), inputs)
    scale = torch.exp(frames[..., -1] + e.frame.log_scale_offset.to(F64))
    assert torch.allclose(after[..., 2] - before[..., 2], 0.01 * scale[..., None], atol=1e-12)


@pytest.mark.parametrize("closed_form", [True, False])
@pytest.mark.parametrize("kwargs", [{}, {"body": "none"}, {"smoothness_weight": 0.0}])
def test_kernel_curvature_blocks_equal_dense_jt_m_j(kwargs, closed_form):
    """Faulty variant: ρ'' dropped or not coupled within a joint's group (plain Gauss–Newton)."""
    e, inputs = energy(**kwargs), window_inputs()
    if not closed_form:  # the base class's forward-mode products with M
        e.curvature_products = partial(SequenceLeastSquaresEnergy.curvature_products, e)
    x = e.initial_solution(inputs)
    x = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    problem = Problem(e, inputs, x.shape[1:], F64)
    r, jac = problem.jacobian(x)
    curvature = torch.stack([torch.func.hessian(lambda rr: 0.5 * e.rho(rr[None] ** 2).sum())(row)
                             for row in r])  # M per sample, in residual space
    expected = jac.transpose(-1, -2) @ curvature @ jac
    _, grad, blocks = e.gauss_newton_block_arrow(x, inputs, kernel_curvature=True)
    _, _, plain = e.gauss_newton_block_arrow(x, inputs)
    scale = expected.abs().max()
    assert (blocks.dense() - expected).abs().max() <= 1e-9 * scale
    assert (plain.dense() - expected).abs().max() > 1e-3 * scale  # the kernels' curvature matters
    assert (grad - problem.gradient(x)).abs().max() <= 1e-9 * (1 + grad.abs().max())
