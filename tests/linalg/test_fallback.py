"""The damped-solve fallback's policy, in closed form, for every batched factorisation.

Each test pins a number the module docstring of :mod:`lightning_energy.linalg.fallback` states:
the first retry's λ is the floor 1e-10 · (1 + mean |diag A|) of each sample, λ then grows
tenfold, at most ``max_retries`` = 8 times, and a solution counts only if its residual relative
to its own right-hand side is at most √eps.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lightning_energy.linalg import (
    BlockArrow,
    BlockArrowMatrix,
    Cholesky,
    LinearSolveInfo,
    block_arrow_damped_solve,
    damped_cholesky_solve,
)
from lightning_energy.linalg.dense import DenseSystem, add_damping
from lightning_energy.linalg.fallback import accurate, solve_with_fallback

F64 = torch.float64


def _as_block_arrow(diagonals: Tensor) -> BlockArrowMatrix:
    """diag(d) (B, n) as block-arrow matrices of one frame, no shared variables."""
    b, n = diagonals.shape
    return BlockArrowMatrix(torch.diag_embed(diagonals)[:, None],
                            torch.zeros(b, 0, n, n, dtype=F64),
                            torch.zeros(b, 1, n, 0, dtype=F64), torch.zeros(b, 0, 0, dtype=F64))


def _dense(diagonals: Tensor, rhs: Tensor, damping: float,
           **kwargs) -> tuple[Tensor, LinearSolveInfo]:
    return damped_cholesky_solve(torch.diag_embed(diagonals), rhs, damping, **kwargs)


def _block_arrow(diagonals: Tensor, rhs: Tensor, damping: float,
                 **kwargs) -> tuple[Tensor, LinearSolveInfo]:
    return block_arrow_damped_solve(_as_block_arrow(diagonals), rhs, damping, **kwargs)


def _fallback(diagonals: Tensor, rhs: Tensor, damping: float,
              **kwargs) -> tuple[Tensor, LinearSolveInfo]:
    return solve_with_fallback(DenseSystem(torch.diag_embed(diagonals)), rhs, damping, **kwargs)


SOLVES = pytest.mark.parametrize("solve", [_dense, _block_arrow, _fallback],
                                 ids=["dense", "block_arrow", "solve_with_fallback"])


@SOLVES
def test_first_retry_is_each_samples_floor_then_tenfold(solve) -> None:
    """Faulty variants: a floor divided by, or shifted from, 1 + mean |diag A|; one floor for
    the whole batch; λ raised elevenfold."""
    diagonals = torch.tensor([[1.0, -1e-9], [100.0, -1e-9]], dtype=F64)
    z, info = solve(diagonals, torch.ones(2, 2, dtype=F64), 0.0)
    floors = 1e-10 * (1 + diagonals.abs().mean(-1))
    # Sample 0: the floor 1.5e-10 leaves −1e-9 + 1.5e-10 < 0, ten floors factorise.
    # Sample 1: its floor 5.1e-9 already does.
    assert info.damping[0].item() == pytest.approx(10 * floors[0].item(), rel=1e-12)
    assert info.damping[1].item() == pytest.approx(floors[1].item(), rel=1e-12)
    assert info.retried.tolist() == [True, True]
    assert info.failed.tolist() == [False, False]
    torch.testing.assert_close(z, 1 / (diagonals + info.damping[:, None]))


@SOLVES
def test_the_default_retry_budget_is_eight(solve) -> None:
    """Faulty variant: a default of nine retries (λ reaches 1e8 floors instead of 1e7)."""
    diagonals = torch.tensor([[1.0, -5e-3]], dtype=F64)
    floor = 1e-10 * (1 + diagonals.abs().mean())
    assert 1e7 * floor < 5e-3 < 1e8 * floor  # the ninth raise is the first to factorise
    z, info = solve(diagonals, torch.ones(1, 2, dtype=F64), 0.0)
    assert info.failed.tolist() == [True]
    assert torch.equal(z, torch.zeros(1, 2, dtype=F64))
    assert info.damping.item() == pytest.approx(1e7 * floor.item(), rel=1e-12)
    _, info = solve(diagonals, torch.ones(1, 2, dtype=F64), 0.0, max_retries=9)
    assert info.failed.tolist() == [False]


def test_the_solver_objects_keep_their_retry_budget() -> None:
    """Faulty variants: ``Cholesky()`` with another default budget; ``BlockArrow`` handing the
    fallback its default (or nothing) instead of its own ``max_retries``."""
    diagonals = torch.tensor([[1.0, -5e-3]], dtype=F64)
    rhs = torch.ones(1, 2, dtype=F64)

    class Curvature:
        def dense(self) -> Tensor:
            return torch.diag_embed(diagonals)

        def block_arrow(self) -> BlockArrowMatrix:
            return _as_block_arrow(diagonals)

    assert int(Cholesky().solve(Curvature(), rhs, 0.0)[1]["failed"]) == 1
    assert int(BlockArrow().solve(Curvature(), rhs, 0.0)[1]["failed"]) == 1
    assert int(BlockArrow(max_retries=9).solve(Curvature(), rhs, 0.0)[1]["failed"]) == 0
    with pytest.raises(ValueError, match=r"BlockArrow\(\) takes a float `damping`"):
        BlockArrow().solve(Curvature(), rhs, "auto")


def test_cholesky_auto_damping_defaults_to_a_margin_of_a_thousandth() -> None:
    """Faulty variant: another default ``auto_margin``."""
    hess = torch.diag_embed(torch.tensor([[1.0, 4.0], [2.0, -3.0]], dtype=F64))

    class Curvature:
        def dense(self) -> Tensor:
            return hess

    _, stats = Cholesky().solve(Curvature(), torch.ones(2, 2, dtype=F64), "auto")
    # λ_b = max(0, −μ_min) + 1e-3 · max |μ|: 0.004 and 3.003
    assert float(stats["damping"]) == pytest.approx((0.004 + 3.003) / 2, rel=1e-12)


def test_a_solution_is_accurate_relative_to_its_own_right_hand_side() -> None:
    """Faulty variants: one residual scale for the whole batch (a sample with a small
    right-hand side is judged against the large one's), or √eps divided by the scale."""
    system = DenseSystem(torch.eye(3, dtype=F64).expand(2, 3, 3))
    rhs = torch.stack([torch.full((3,), 1e6, dtype=F64), torch.ones(3, dtype=F64)])
    z = rhs * torch.tensor([[1 + 1e-12], [1 + 1e-3]], dtype=F64)  # relative errors
    assert accurate(system, rhs, torch.zeros(2, dtype=F64), z).tolist() == [True, False]


def test_add_damping_adds_exactly_lambda_in_the_matrix_dtype() -> None:
    """Faulty variants: the identity or λ made in the default dtype (float32): 0.1 is then
    rounded to float32 in a float64 matrix, and a float16 matrix comes back in float32."""
    m = torch.randn(2, 3, 3, dtype=F64)
    assert torch.equal(add_damping(m, 0.1), m + 0.1 * torch.eye(3, dtype=F64))
    half = torch.eye(3, dtype=torch.float16)[None]
    assert add_damping(half, 0.5).dtype == torch.float16
