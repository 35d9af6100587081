"""The sequence energy's block-arrow Gauss–Newton matrix and Hessian against dense autograd."""

from __future__ import annotations

import pytest
import torch

from lightning_energy.solvers.problem import Problem
from tests.helpers import WobblyTrack

F64 = torch.float64


def window(t: int, shared: int, seed: int = 0) -> tuple[WobblyTrack, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    energy = WobblyTrack(shared).double()
    inputs = torch.randn(3, t, 3, generator=gen, dtype=F64)
    x = torch.randn(3, 3 * t + shared, generator=gen, dtype=F64)
    return energy, inputs, x


@pytest.mark.parametrize(("t", "shared"), [(1, 0), (1, 2), (2, 2), (3, 0), (4, 3), (9, 2)])
def test_gauss_newton_blocks_equal_the_dense_gauss_newton(t, shared):
    """Faulty variant: the pair rows' two frame derivatives swapped for odd t."""
    energy, inputs, x = window(t, shared)
    value, grad, dense = Problem(energy, inputs, x.shape[1:], F64).gauss_newton(x)
    value2, grad2, matrix = energy.gauss_newton_block_arrow(x, inputs)
    assert torch.allclose(value2, value, rtol=1e-12, atol=0)
    assert (grad2 - grad).abs().max() <= 1e-12 * (1 + grad.abs().max())
    assert (matrix.dense() - dense).abs().max() <= 1e-12 * (1 + dense.abs().max())


@pytest.mark.parametrize(("t", "shared"), [(1, 0), (2, 1), (3, 2), (5, 0), (8, 3)])
def test_hessian_blocks_equal_the_dense_hessian(t, shared):
    """Faulty variant: two colours instead of three (a row mixes both neighbours' blocks)."""
    energy, inputs, x = window(t, shared, seed=1)
    dense = Problem(energy, inputs, x.shape[1:], F64).hessian(x)
    matrix = energy.hessian_block_arrow(x, inputs)
    assert (matrix.dense() - dense).abs().max() <= 1e-12 * (1 + dense.abs().max())
    assert dense.abs().max() > 0.1  # a real second-order term, not an empty check


def test_a_solution_of_the_wrong_length_is_an_error_naming_x():
    energy, _inputs, _ = window(4, 2)
    with pytest.raises(ValueError, match=r"`x` of shape \(B, T·3 \+ 2\)"):
        energy.split(torch.zeros(3, 13, dtype=F64))
