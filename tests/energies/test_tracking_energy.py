import pytest
import torch

import lightning_energy as le
from lightning_energy.datasets.tracking_batch import TrackingSample, collate_tracking
from lightning_energy.datasets.tracking_synthetic import simulate_tracking
from lightning_energy.energies.tracking import (
    TrackFusionEnergy,
    TrackFusionInputs,
    consensus_boxes,
    fusion_inputs,
    weighted_median,
)
from lightning_energy.errors import ShapeError
from lightning_energy.linalg import Banded
from lightning_energy.solvers.banded_irls import BandedIRLS
from lightning_energy.solvers.problem import Problem
from lightning_energy.testing import check_energy


def _batch(length: int = 12, trackers: int = 4, sequences: int = 3, seed: int = 0):
    data = simulate_tracking(sequences, 60, trackers, seed=seed)
    items = [TrackingSample.from_arrays(d.boxes, d.gt, d.sequence).window(5, length) for d in data]
    return collate_tracking(items)


def _inputs(length: int = 12, trackers: int = 4):
    batch = _batch(length, trackers)
    inputs, frame = fusion_inputs(batch.boxes, batch.valid, batch.frame_valid)
    return batch, inputs, frame


def test_frame_round_trip():
    batch, _, frame = _inputs()
    boxes = frame.to_boxes(frame.to_state(batch.target))
    assert torch.allclose(boxes, batch.target, atol=1e-3)


def test_energy_gradients_match_finite_differences():
    _, inputs, _ = _inputs(length=8, trackers=3)
    inputs.logit = 0.3 * torch.randn(inputs.mask.shape)
    inputs.mask[0, 2, 1] = False
    energy = TrackFusionEnergy(3, kernel=le.robust.Cauchy(0.4, learnable=True))
    report = check_energy(energy, inputs, tol=1e-5)
    assert report.grad_norm < 1e-8
    assert report.param_error < 1e-5
    assert report.input_error < 1e-5


def test_ablation_switches_freeze_parameter_groups():
    energy = TrackFusionEnergy(3, kernel=le.robust.Cauchy(0.4, learnable=True),
                               learn_smoothness=False, learn_tracker_weights=True)
    frozen = {n for n, p in energy.named_parameters() if not p.requires_grad}
    assert frozen == {"log_alpha", "log_beta", "robust.log_scale"}
    energy = TrackFusionEnergy(3, learn_tracker_weights=False)
    assert not energy.log_tracker_weight.requires_grad
    assert energy.log_alpha.requires_grad


def test_banded_irls_matches_levenberg_marquardt():
    _, inputs, _ = _inputs(length=16)
    energy = TrackFusionEnergy(4)
    irls = le.EnergyLayer(energy, BandedIRLS(max_steps=100, tol=1e-9))
    lm = le.EnergyLayer(energy, le.LevenbergMarquardt(max_steps=200, tol=1e-9, dtype="float64"))
    with torch.no_grad():
        a, b = irls(inputs), lm(inputs)
    assert bool(a.converged.all())
    assert torch.allclose(a.x, b.x, atol=1e-4)
    assert bool((a.value <= energy(inputs.reference.double(), inputs).double() + 1e-9).all())


def test_masked_tracker_has_no_influence():
    _, inputs, _ = _inputs()
    energy = TrackFusionEnergy(4)
    x = inputs.reference + 0.1
    inputs.mask[:, :, 2] = False
    before = energy(x, inputs)
    inputs.obs = inputs.obs.clone()
    inputs.obs[:, :, 2] += 100.0
    assert torch.allclose(energy(x, inputs), before)


def test_consensus_fills_frames_without_trackers():
    batch = _batch()
    valid = batch.valid.clone()
    valid[:, 3] = False
    out = consensus_boxes(batch.boxes, valid)
    assert torch.equal(out[:, 3], out[:, 2])


def test_wrong_number_of_trackers_is_named():
    _, inputs, _ = _inputs(trackers=4)
    with pytest.raises(ShapeError, match="num_trackers"):
        TrackFusionEnergy(5)(inputs.reference, inputs)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="tracker_weights"):
        TrackFusionEnergy(2, tracker_weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="num_trackers"):
        TrackFusionEnergy(0)


def test_banded_hessian_matches_autograd_and_adjoint_matches_dense():
    _, inputs, _ = _inputs(length=10, trackers=3)
    energy = TrackFusionEnergy(3).double()
    inputs = TrackFusionInputs(inputs.obs.double(), inputs.mask, inputs.logit.double(),
                               inputs.scale.double(), inputs.reference.double())
    problem = Problem(energy, inputs, (10, 4))
    x = inputs.reference.reshape(3, -1) + 0.05 * torch.randn(3, 40, dtype=torch.float64)
    dense = problem.hessian(x)
    assert torch.allclose(_dense(energy.hessian_bands(x, inputs)), dense, atol=1e-10)
    # A redescending data kernel can make H indefinite; damp enough that H + λI is positive
    # definite, so that the adjoint's first Cholesky attempt is the one compared.
    damping = max(0.1, 0.1 - float(torch.linalg.eigvalsh(dense).min()))
    rhs = torch.randn(3, 40, dtype=torch.float64)
    expected = torch.linalg.solve(dense + damping * torch.eye(40, dtype=torch.float64), rhs)
    got, stats = le.ImplicitAdjoint(damping, linear_solver=Banded()).damped_solve(
        problem, x, rhs)
    assert torch.allclose(got, expected, atol=1e-8)
    assert int(stats["failed"]) == 0
    banded, _ = le.ImplicitAdjoint(damping, linear_solver=Banded(dense_below=2)).damped_solve(
        problem, x, rhs)
    assert torch.allclose(banded, expected, atol=1e-8)


@pytest.mark.parametrize("family", ["Cauchy", "GemanMcClure", "PseudoHuber", "Huber"])
def test_banded_hessian_matches_autograd_for_every_data_kernel(family):
    _, inputs, _ = _inputs(length=10, trackers=3)
    kernel = getattr(le.robust, family)(0.2, learnable=True)
    energy = TrackFusionEnergy(3, kernel=kernel).double()
    inputs = TrackFusionInputs(inputs.obs.double(), inputs.mask, inputs.logit.double(),
                               inputs.scale.double(), inputs.reference.double())
    x = inputs.reference.reshape(3, -1) + 0.05 * torch.randn(3, 40, dtype=torch.float64)
    dense = Problem(energy, inputs, (10, 4)).hessian(x)
    assert torch.allclose(_dense(energy.hessian_bands(x, inputs)), dense, atol=1e-10)


def _dense(bands: torch.Tensor) -> torch.Tensor:
    """Bands (B, 4, 3, T) → the full (B, 4T, 4T) Hessian in the flat (t, coordinate) order."""
    b, _, _, t = bands.shape
    out = torch.zeros(b, t, 4, t, 4, dtype=bands.dtype)
    for c in range(4):
        for j in range(3):
            for i in range(t - j):
                out[:, i, c, i + j, c] = bands[:, c, j, i]
                out[:, i + j, c, i, c] = bands[:, c, j, i]
    return out.reshape(b, 4 * t, 4 * t)


def test_banded_adjoint_gradient_matches_finite_differences():
    _, inputs, _ = _inputs(length=8, trackers=3)
    energy = TrackFusionEnergy(3)
    report = check_energy(energy, inputs, solver=BandedIRLS(max_steps=500, tol=1e-11))
    assert report.param_error < 1e-5
    layer = le.EnergyLayer(energy.double(), BandedIRLS(max_steps=500, tol=1e-11),
                           le.ImplicitAdjoint(0.0, linear_solver=Banded()))
    ref = le.EnergyLayer(energy, BandedIRLS(max_steps=500, tol=1e-11), le.ImplicitAdjoint(0.0))
    x1, x2 = layer(inputs).x, ref(inputs).x
    g1 = torch.autograd.grad(x1.sum(), energy.log_alpha)[0]
    g2 = torch.autograd.grad(x2.sum(), energy.log_alpha)[0]
    assert torch.allclose(g1, g2, rtol=1e-6, atol=1e-9)


def test_weighted_median_and_weighted_start():
    values = torch.tensor([[[[1.0], [2.0], [10.0]]]])  # (B=1, T=1, K=3, C=1)
    weights = torch.tensor([[[1.0, 1.0, 1.0]]])
    assert weighted_median(values, weights).item() == 2.0
    weights = torch.tensor([[[0.1, 0.1, 5.0]]])
    assert weighted_median(values, weights).item() == 10.0
    _, inputs, _ = _inputs(trackers=4)
    energy = TrackFusionEnergy(4, tracker_weights=[100.0, 1e-3, 1e-3, 1e-3])
    start = energy.initial_solution(inputs)
    tracker0 = torch.where(inputs.mask[..., :1, None], inputs.obs[:, :, :1], start[:, :, None])
    assert torch.allclose(start, tracker0[:, :, 0])
    consensus = TrackFusionEnergy(4, weighted_start=False).initial_solution(inputs)
    assert torch.equal(consensus, inputs.reference)


def test_irls_system_energy_and_gradient_are_the_energys():
    """Faulty variants caught: a term left out of the energy the solver compares steps by; an
    IRLS system whose A·x − b is not ∇ₓE (the solver's convergence test would then lie)."""
    _, inputs, _ = _inputs(length=10, trackers=3)
    inputs.logit = 0.3 * torch.randn(inputs.mask.shape)
    energy = TrackFusionEnergy(3, kernel=le.robust.Cauchy(0.3)).double()
    inputs = TrackFusionInputs(inputs.obs.double(), inputs.mask, inputs.logit.double(),
                               inputs.scale.double(), inputs.reference.double())
    x = inputs.reference + 0.05 * torch.randn(inputs.reference.shape, dtype=torch.float64)
    value, bands, rhs = energy.irls_system(x, inputs)
    torch.testing.assert_close(value, energy(x, inputs))
    problem = Problem(energy, inputs, (10, 4))
    from lightning_energy.linalg import band_matvec

    grad = (band_matvec(bands, x.permute(0, 2, 1)) - rhs).permute(0, 2, 1).reshape(3, -1)
    torch.testing.assert_close(grad, problem.gradient(x.reshape(3, -1)))
    torch.testing.assert_close(energy.hessian_bands(x, inputs, bands),
                               energy.hessian_bands(x, inputs))


def test_fusion_inputs_ignore_whatever_a_missing_box_holds():
    """Faulty variant: a masked tracker's (half-NaN) box still reaches the consensus or obs."""
    gen = torch.Generator().manual_seed(3)
    boxes = 40 + 10 * torch.rand(2, 6, 3, 4, generator=gen, dtype=torch.float64)
    valid = torch.ones(2, 6, 3, dtype=torch.bool)
    valid[0, 2, 1] = False
    frames = torch.ones(2, 6, dtype=torch.bool)
    clean, _ = fusion_inputs(boxes, valid, frames)
    dirty_boxes = boxes.clone()
    dirty_boxes[0, 2, 1] = torch.tensor([1e4, float("nan"), 5.0, 5.0], dtype=torch.float64)
    dirty, _ = fusion_inputs(dirty_boxes, valid, frames)
    for name in ("obs", "mask", "scale", "reference"):
        assert torch.equal(getattr(dirty, name), getattr(clean, name)), name
    energy = TrackFusionEnergy(3).double()
    assert torch.equal(energy(clean.reference, dirty), energy(clean.reference, clean))
