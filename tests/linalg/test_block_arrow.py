"""Block-arrow solves (block-tridiagonal Cholesky + Schur complement) against dense solves."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from lightning_energy.linalg import BlockArrowMatrix, block_arrow_damped_solve
from lightning_energy.linalg.dense import DenseSystem

F64 = torch.float64


def random_block_arrow(b: int, t: int, p: int, s: int, seed: int = 0,
                       dtype: torch.dtype = F64) -> BlockArrowMatrix:
    """Symmetric positive-definite block-arrow matrices: JᵀJ + I of a block-sparse J."""
    gen = torch.Generator().manual_seed(seed)
    n = t * p + s
    rows = []
    for i in range(t):  # frame term: x_i and the shared variables
        j = torch.zeros(b, p + 2, n, dtype=dtype)
        j[:, :, i * p : (i + 1) * p] = torch.randn(b, p + 2, p, generator=gen, dtype=dtype)
        j[:, :, t * p :] = torch.randn(b, p + 2, s, generator=gen, dtype=dtype)
        rows.append(j)
    for i in range(t - 1):  # pair term: x_i, x_{i+1}
        j = torch.zeros(b, p, n, dtype=dtype)
        j[:, :, i * p : (i + 2) * p] = torch.randn(b, p, 2 * p, generator=gen, dtype=dtype)
        rows.append(j)
    jac = torch.cat(rows, 1)
    dense = jac.transpose(-1, -2) @ jac + torch.eye(n, dtype=dtype)
    return BlockArrowMatrix.from_dense(dense, t, p)


def dense_solve(a: BlockArrowMatrix, rhs: torch.Tensor, lam: float) -> torch.Tensor:
    """The reference: SciPy's dense LAPACK solve of (A + λI) z = rhs, sample by sample.

    SciPy's, not torch's, so the reference shares no code path with the solver under test.
    """
    dense = (a.dense() + lam * torch.eye(a.size, dtype=rhs.dtype)).numpy()
    out = [scipy.linalg.solve(m, r, assume_a="sym") for m, r in zip(dense, rhs.numpy(),
                                                                      strict=True)]
    return torch.from_numpy(np.stack(out))


@pytest.mark.parametrize(("t", "p", "s"), [(1, 3, 0), (1, 3, 2), (2, 1, 1), (5, 4, 3),
                                            (16, 6, 0), (12, 30, 8), (64, 3, 5)])
@pytest.mark.parametrize("lam", [0.0, 1e-2])
def test_solve_equals_the_dense_solve(t, p, s, lam):
    a = random_block_arrow(3, t, p, s, seed=t + p + s)
    rhs = torch.randn(3, a.size, dtype=F64, generator=torch.Generator().manual_seed(1))
    z, info = block_arrow_damped_solve(a, rhs, lam)
    expected = dense_solve(a, rhs, lam)
    residual = a.matvec(z) + lam * z - rhs
    assert residual.abs().max() <= 1e-10 * (1 + rhs.abs().max())
    assert (z - expected).abs().max() <= 1e-10 * (1 + expected.abs().max())
    assert not info.retried.any()
    assert not info.failed.any()


def test_the_pattern_is_exactly_what_dense_and_from_dense_exchange():
    a = random_block_arrow(2, 4, 3, 2)
    dense = a.dense()
    assert torch.equal(dense, dense.transpose(-1, -2))
    again = BlockArrowMatrix.from_dense(dense, 4, 3)
    for name in ("diagonal", "lower", "border", "corner"):
        assert torch.equal(getattr(again, name), getattr(a, name)), name
    # frames two apart are not coupled: the (0, 2) block is zero in the dense matrix
    assert dense[:, 0:3, 6:9].abs().max() == 0
    assert dense[:, 0:3, 3:6].abs().max() > 0


@pytest.mark.parametrize(("t", "s"), [(1, 0), (1, 2), (2, 0), (6, 4)])
def test_matvec_equals_the_dense_product(t, s):
    a = random_block_arrow(2, t, 3, s, seed=5)
    z = torch.randn(2, a.size, dtype=F64)
    expected = (a.dense() @ z.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(a.matvec(z), expected, atol=1e-12)


def test_singular_frame_blocks_are_solved_with_damping():
    """Faulty variant: the damping added to the Schur corner only, not to the frame blocks."""
    a = random_block_arrow(2, 6, 4, 3, seed=2)
    # Rank-one frame blocks, no coupling in time, a weak border: singular without damping.
    v = torch.randn(2, 6, 4, 1, dtype=F64)
    a = BlockArrowMatrix(v @ v.transpose(-1, -2), torch.zeros_like(a.lower), 1e-2 * a.border,
                         a.corner)
    rhs = torch.randn(2, a.size, dtype=F64)
    z, info = block_arrow_damped_solve(a, rhs, 1e-3)
    expected = dense_solve(a, rhs, 1e-3)
    assert (z - expected).abs().max() <= 1e-10 * (1 + expected.abs().max())
    assert not info.retried.any()


def test_indefinite_samples_get_more_damping_and_are_flagged():
    """Faulty variant: a failed block factorisation replaced by I and its sample not flagged."""
    a = random_block_arrow(3, 5, 3, 2, seed=3)
    diag = a.diagonal.clone()
    diag[1, 2] = -50 * torch.eye(3, dtype=F64)  # sample 1 is indefinite
    a = BlockArrowMatrix(diag, a.lower, a.border, a.corner)
    rhs = torch.randn(3, a.size, dtype=F64)
    z, info = block_arrow_damped_solve(a, rhs, 1e-4)
    assert info.retried.tolist() == [False, True, False]
    assert not info.failed.any()
    assert info.damping[1] > 1e-4
    assert info.damping[0] == 1e-4
    residual = a.matvec(z) + info.damping[:, None] * z - rhs
    assert residual.abs().max() <= 1e-9
    z, info = block_arrow_damped_solve(a, rhs, 1e-4, max_retries=0)
    assert info.failed.tolist() == [False, True, False]
    assert z[1].abs().max() == 0
    assert (z[0] - dense_solve(a, rhs, 1e-4)[0]).abs().max() <= 1e-10


def test_float32_inaccurate_samples_are_resolved_in_float64():
    """Faulty variant: the residual check skipped, a float32 'success' used as it is."""
    gen = torch.Generator().manual_seed(4)
    q = torch.linalg.qr(torch.randn(2, 8, 5, 5, generator=gen, dtype=F64))[0]
    spectrum = torch.ones(2, 8, 5, dtype=F64)
    spectrum[1, 3, 0] = 1e-7  # sample 1: one frame block nearly singular
    diagonal = q @ torch.diag_embed(spectrum) @ q.transpose(-1, -2)
    corner = torch.eye(2, dtype=F64).repeat(2, 1, 1)
    a64 = BlockArrowMatrix(diagonal, torch.zeros(2, 7, 5, 5, dtype=F64),
                           torch.zeros(2, 8, 5, 2, dtype=F64), corner)
    a32 = BlockArrowMatrix(diagonal.float(), a64.lower.float(), a64.border.float(),
                           a64.corner.float())
    rhs = torch.randn(2, a64.size, generator=gen, dtype=F64)
    z, info = block_arrow_damped_solve(a32, rhs.float(), 0.0)
    # The float32 matrix solved exactly: float32's own solve is off by far more than 1e-5.
    a32_in_64 = BlockArrowMatrix(*(getattr(a32, k).double() for k in ("diagonal", "lower",
                                                                       "border", "corner")))
    expected = dense_solve(a32_in_64, rhs.float().double(), 0.0)
    rel = (z.double() - expected).norm(dim=-1) / expected.norm(dim=-1)
    z32, _ = a32.try_solve(rhs.float(), torch.zeros(2))
    assert (z32[1].double() - expected[1]).norm() / expected[1].norm() > 1e-3
    assert z.dtype == torch.float32
    assert info.retried.tolist() == [False, True]
    assert rel.max() <= 1e-5


def test_bad_shapes_name_the_argument():
    a = random_block_arrow(2, 3, 2, 1)
    with pytest.raises(ValueError, match="`lower` of shape"):
        BlockArrowMatrix(a.diagonal, a.lower[:, :1], a.border, a.corner)
    with pytest.raises(ValueError, match="`border` of shape"):
        BlockArrowMatrix(a.diagonal, a.lower, a.border[..., :0], a.corner)
    with pytest.raises(ValueError, match="`rhs` of shape"):
        block_arrow_damped_solve(a, torch.zeros(2, 6, dtype=F64), 0.0)


@pytest.mark.parametrize("s", [0, 3])
def test_diagonal_scale_is_the_dense_matrix_mean_absolute_diagonal(s: int) -> None:
    """Faulty variants: another pair of axes or a sum over the batch, the shared block's
    diagonal subtracted, a product for the mean — the damping fallback scales λ by this."""
    a = random_block_arrow(3, 4, 2, s, seed=7)
    a = BlockArrowMatrix(-a.diagonal, a.lower, a.border, a.corner)  # signs matter: |·|
    dense = a.dense()
    expected = dense.diagonal(dim1=-2, dim2=-1).abs().mean(-1)
    torch.testing.assert_close(a.diagonal_scale(), expected)
    torch.testing.assert_close(DenseSystem(dense).diagonal_scale(), expected)
    assert expected.unique().numel() == 3  # each matrix its own scale


def test_from_dense_round_trips_and_rejects_what_is_not_a_block_arrow_stack() -> None:
    """Faulty variants: the sub-diagonal read from the wrong blocks for T > 2, or a shape check
    that lets a non-square, unbatched or too small matrix through."""
    # Built from its blocks, not by from_dense (which random_block_arrow uses).
    gen = torch.Generator().manual_seed(3)
    blocks = [torch.randn(2, *shape, generator=gen, dtype=F64)
              for shape in ((4, 3, 3), (3, 3, 3), (4, 3, 2), (2, 2))]
    blocks[0], blocks[3] = blocks[0] + blocks[0].transpose(-1, -2), blocks[3] + blocks[3].mT
    a = BlockArrowMatrix(*blocks)
    back = BlockArrowMatrix.from_dense(a.dense(), 4, 3)
    for name, block in zip(("diagonal", "lower", "border", "corner"), blocks, strict=True):
        assert torch.equal(getattr(back, name), block), name
    dense = a.dense()
    for bad, frames in ((dense[:, :, :-1], 4), (dense[0], 4), (dense, 5)):
        with pytest.raises(ValueError, match=r"Expected `matrix` of shape \(B, n, n\)"):
            BlockArrowMatrix.from_dense(bad, frames, 3)


def test_a_float32_matrix_is_solved_in_the_rhs_dtype() -> None:
    """Faulty variants: a block, the border, the damping or an identity left in the matrix's
    float32 while the right-hand side is float64 (the fallback's float64 retry relies on it)."""
    a = random_block_arrow(2, 3, 2, 2, seed=5)
    a32 = BlockArrowMatrix(a.diagonal.float(), a.lower.float(), a.border.float(),
                           a.corner.float())
    rhs = torch.randn(2, a.size, dtype=F64)
    lam = torch.full((2,), 0.1, dtype=F64)
    z, ok = a32.try_solve(rhs, lam)
    assert z.dtype == F64
    assert bool(ok.all())
    exact = torch.linalg.solve(a32.dense().double() + 0.1 * torch.eye(a.size, dtype=F64), rhs)
    torch.testing.assert_close(z, exact, rtol=1e-12, atol=1e-12)


def test_blocks_of_the_wrong_rank_or_a_non_square_corner_are_named() -> None:
    """Faulty variants: the rank check passes when only one of `diagonal` and `corner` is
    wrong, or the shared size read from the corner's rows."""
    a = random_block_arrow(2, 3, 2, 1)
    rank = r"expected `diagonal` \(B, T, p, p\) and `corner` \(B, s, s\)"
    with pytest.raises(ValueError, match=rank):
        BlockArrowMatrix(a.diagonal[0], a.lower, a.border, a.corner)
    with pytest.raises(ValueError, match=rank):
        BlockArrowMatrix(a.diagonal, a.lower, a.border, a.corner[0])
    wide = torch.zeros(2, 2, 1, dtype=F64)  # (B, s = 2 rows, 1 column), border of s = 1
    with pytest.raises(ValueError, match="`corner` of shape"):
        BlockArrowMatrix(a.diagonal, a.lower, a.border, wide)


def test_unpack_rejects_a_packed_tensor_of_the_wrong_rank() -> None:
    """Faulty variant: the check passes when only one of rank and width is wrong."""
    a = random_block_arrow(2, 3, 2, 1)
    packed = a.pack()
    again = BlockArrowMatrix.unpack(packed, 3, 2, 1)
    assert torch.equal(again.dense(), a.dense())
    with pytest.raises(ValueError, match="Expected `packed` of shape"):
        BlockArrowMatrix.unpack(packed[..., None], 3, 2, 1)
