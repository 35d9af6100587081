"""SolverConvergence against a NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_energy.errors import ShapeError
from lightning_energy.metrics import SolverConvergence, solver_convergence


def make_batches(seed: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for size, with_grad in ((7, True), (1, False), (12, True), (0, True), (4, False)):
        converged = torch.rand(size, generator=gen) > 0.3
        steps = torch.randint(1, 100, (size,), generator=gen, dtype=torch.int32)
        grad = torch.rand(size, generator=gen, dtype=torch.float64) if with_grad else None
        batches.append((converged, steps, grad))
    return batches


def test_matches_numpy_over_uneven_batches() -> None:
    batches = make_batches(0)
    metric = SolverConvergence()
    for converged, steps, grad in batches:
        metric.update(converged, steps, grad)
    conv = np.concatenate([c.numpy() for c, _, _ in batches])
    steps = np.concatenate([s.numpy() for _, s, _ in batches])
    grads = np.concatenate([g.numpy() for _, _, g in batches if g is not None])
    got = metric.compute()
    assert set(got) == {"converged", "steps_mean", "steps_max", "grad_norm_mean"}
    assert got["converged"].item() == pytest.approx(conv.mean(), rel=1e-12)
    assert got["steps_mean"].item() == pytest.approx(steps.mean(), rel=1e-12)
    assert got["steps_max"].item() == steps.max()
    assert got["grad_norm_mean"].item() == pytest.approx(grads.mean(), rel=1e-12)


def test_functional_equals_class_on_one_batch() -> None:
    converged, steps, grad = make_batches(1)[2]
    metric = SolverConvergence()
    batch_value = metric(converged, steps, grad)
    expected = solver_convergence(converged, steps, grad)
    for key, value in expected.items():
        assert value.dtype == torch.float64
        assert batch_value[key].item() == pytest.approx(value.item(), rel=1e-12)
        assert metric.compute()[key].item() == pytest.approx(value.item(), rel=1e-12)


def test_forward_keeps_running_max() -> None:
    metric = SolverConvergence()
    metric(torch.tensor([True]), torch.tensor([40]))
    batch_value = metric(torch.tensor([False, True]), torch.tensor([3, 5]))
    assert batch_value["steps_max"].item() == 5.0
    assert metric.compute()["steps_max"].item() == 40.0
    assert metric.compute()["converged"].item() == pytest.approx(2 / 3)


def test_without_grad_norm_the_mean_is_nan() -> None:
    out = solver_convergence(torch.tensor([True, False]), torch.tensor([2, 9]))
    assert torch.isnan(out["grad_norm_mean"])
    assert out["converged"].item() == 0.5


@pytest.mark.parametrize("call", [solver_convergence, SolverConvergence().update])
def test_errors(call) -> None:
    ok_conv, ok_steps = torch.tensor([True, False]), torch.tensor([2, 9])
    with pytest.raises(ShapeError, match=r"`converged` of dtype torch.bool, got \(2,\)"):
        call(ok_conv.float(), ok_steps)
    with pytest.raises(ShapeError, match=r"Expected `converged` of shape \(B\), got \(2, 1\)"):
        call(ok_conv[:, None], ok_steps)
    with pytest.raises(ShapeError, match="`num_steps` of an integer dtype"):
        call(ok_conv, ok_steps.float())
    with pytest.raises(ShapeError, match="`num_steps` and `converged` to have the same shape"):
        call(ok_conv, ok_steps[:1])
    with pytest.raises(ShapeError, match="`grad_norm` and `converged` to have the same shape"):
        call(ok_conv, ok_steps, torch.zeros(3))


def test_boolean_steps_are_rejected():
    """Faulty variant: ``… or is_complex() and dtype == bool`` (booleans then pass as steps)."""
    with pytest.raises(ShapeError, match="`num_steps` of an integer dtype"):
        solver_convergence(torch.tensor([True, False]), torch.tensor([True, True]))


def test_float32_gradient_norms_are_summed_in_float64():
    """Faulty variant: ``grad_norm.sum(dtype=None)`` (float32 drops small norms beside 2**24)."""
    grad = torch.tensor([2.0**24, 1.0, 1.0], dtype=torch.float32)
    stats = solver_convergence(torch.ones(3, dtype=torch.bool), torch.ones(3, dtype=torch.long),
                               grad)
    assert float(stats["grad_norm_mean"]) == (2.0**24 + 2.0) / 3


def test_steps_max_starts_from_zero():
    """Faulty variant: the running maximum initialised at 1 (a batch of 0-step solves reads 1)."""
    metric = SolverConvergence()
    metric.update(torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.long))
    assert float(metric.compute()["steps_max"]) == 0.0
