import numpy as np
import pytest
import scipy.linalg
import torch

from lightning_energy.linalg import Banded, band_matvec, banded_damped_solve, solve_bands
from lightning_energy.linalg.banded import dense_from_bands


def _bands(t: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    d0 = 4 + torch.rand(2, t, generator=gen, dtype=torch.float64)
    d1 = -torch.rand(2, t, generator=gen, dtype=torch.float64)
    d2 = 0.3 * torch.rand(2, t, generator=gen, dtype=torch.float64)
    return torch.stack([d0, d1, d2], 1)


def test_banded_and_dense_solves_agree():
    bands = _bands(300)
    rhs = torch.randn(2, 300, dtype=torch.float64)
    dense = solve_bands(bands, rhs, dense_below=301)
    banded = solve_bands(bands, rhs, dense_below=10)
    assert torch.allclose(dense, banded, atol=1e-10)
    assert torch.allclose(band_matvec(bands, banded), rhs, atol=1e-10)


@pytest.mark.parametrize("t", [1, 2, 3, 7])
def test_band_matvec_matches_the_dense_matrix(t):
    bands = _bands(t, seed=t)
    z = torch.randn(2, t, dtype=torch.float64)
    expected = (dense_from_bands(bands) @ z[..., None])[..., 0]
    assert torch.allclose(band_matvec(bands, z), expected, atol=1e-12)


def test_banded_damped_solve_adds_the_damping_and_falls_back_per_system():
    bands = _bands(50)
    rhs = torch.randn(2, 50, dtype=torch.float64)
    z, info = banded_damped_solve(bands, rhs, 0.5)
    shifted = torch.cat([bands[:, :1] + 0.5, bands[:, 1:]], 1)
    assert torch.allclose(band_matvec(shifted, z), rhs, atol=1e-10)
    assert not info.retried.any()
    assert not info.failed.any()
    # System 0: a singular Laplacian (factorisation fails at λ = 0, succeeds with a little
    # damping); system 1: strongly indefinite (never factorises with the retries' damping).
    t = 50
    laplacian = torch.stack([torch.full((t,), 2.0), torch.full((t,), -1.0), torch.zeros(t)])
    laplacian[0, 0] = laplacian[0, -1] = 1.0
    indefinite = bands[1].clone()
    indefinite[0] -= 10.0
    mixed = torch.stack([laplacian.double(), indefinite])
    z, info = banded_damped_solve(mixed, rhs, 0.0)
    assert info.retried.tolist() == [True, True]
    assert info.failed.tolist() == [False, True]
    lam = float(info.damping[0])
    assert 0 < lam < 1e-6
    fixed = torch.cat([mixed[:1, :1] + lam, mixed[:1, 1:]], 1)
    assert torch.allclose(band_matvec(fixed, z[:1]), rhs[:1], rtol=1e-6, atol=1e-6)
    assert torch.equal(z[1], torch.zeros(t, dtype=torch.float64))


def test_banded_damped_solve_damping_record_floor_and_retry_budget():
    """Faulty variants: λ kept in float32, flags not bool, another floor or retry budget."""
    bands = _bands(5)
    rhs = torch.ones(2, 5, dtype=torch.float64)
    _, info = banded_damped_solve(bands, rhs, 0.1)
    assert info.damping.tolist() == [0.1, 0.1]  # exactly the float64 λ given
    assert info.retried.dtype == info.failed.dtype == torch.bool
    z, info = banded_damped_solve(bands.float(), rhs.float(), 0.1)
    assert z.dtype == info.damping.dtype == torch.float32  # LAPACK runs in float64 inside
    # An indefinite diagonal block from λ = 0: the first retry uses the floor
    # 1e-10 · (1 + mean |diagonal|), then λ grows tenfold until it factorises.
    tiny = torch.zeros(1, 3, 3, dtype=torch.float64)
    tiny[0, 0] = torch.tensor([-3e-9, 1.0, 1.0], dtype=torch.float64)
    _, info = banded_damped_solve(tiny, torch.ones(1, 3, dtype=torch.float64), 0.0)
    floor = 1e-10 * (1 + (3e-9 + 2) / 3)
    assert float(info.damping[0]) == pytest.approx(100 * floor, rel=1e-12)
    # −500 on the diagonal needs λ > 500: 1e-6 · 10⁹, one retry beyond the default eight.
    hard = tiny.clone()
    hard[0, 0, 0] = -500.0
    _, info = banded_damped_solve(hard, torch.ones(1, 3, dtype=torch.float64), 1e-6)
    assert info.failed.tolist() == [True]
    assert float(info.damping[0]) == pytest.approx(1e-6 * 10**8)  # the last λ tried
    _, info = banded_damped_solve(hard, torch.ones(1, 3, dtype=torch.float64), 1e-6,
                                  max_retries=9)
    assert info.failed.tolist() == [False]


def test_banded_solver_refuses_auto_damping_itself() -> None:
    """Faulty variant: the solver's own check of ``damping == "auto"`` lost (ImplicitAdjoint
    refuses the pair first, so only a direct call reaches it)."""
    with pytest.raises(ValueError, match="float `damping`, got 'auto'"):
        Banded().solve(None, torch.zeros(1, 4), "auto")  # type: ignore[arg-type]


def _spd_bands(batch: int, t: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    bands = 0.3 * torch.randn(batch, 3, t, generator=gen, dtype=torch.float64)
    bands[:, 0] = 3.0 + torch.rand(batch, t, generator=gen, dtype=torch.float64)
    return bands


@pytest.mark.parametrize("t", [1, 2, 3, 5])
def test_band_matvec_equals_the_dense_product_for_short_blocks(t: int) -> None:
    """Faulty variant: the off-diagonal products switched on or off at the wrong length."""
    bands = _spd_bands(2, t, seed=t)
    z = torch.randn(2, t, dtype=torch.float64)
    dense = dense_from_bands(bands)
    torch.testing.assert_close(band_matvec(bands, z), torch.einsum("bij,bj->bi", dense, z))


def test_lapack_path_returns_the_rhs_dtype() -> None:
    """Faulty variant: the scipy result left in float64 for a float32 right-hand side."""
    bands = _spd_bands(3, 6, seed=1)
    rhs = torch.randn(3, 6, dtype=torch.float64)
    z = solve_bands(bands.float(), rhs.float(), dense_below=0)
    assert z.dtype == torch.float32
    torch.testing.assert_close(z.double(), torch.linalg.solve(dense_from_bands(bands), rhs),
                               rtol=1e-4, atol=1e-5)


def test_non_finite_bands_fail_like_an_indefinite_system() -> None:
    """Faulty variant: LAPACK's NaN solution of a NaN system returned as a success (with
    ``check_finite=False`` LAPACK passes NaN through instead of failing)."""
    bands = _spd_bands(2, 6, seed=2)
    bands[1, 1, 2] = float("nan")
    rhs = torch.ones(2, 6, dtype=torch.float64)
    z, info = banded_damped_solve(bands, rhs, 0.0)
    assert info.failed.tolist() == [False, True]
    assert torch.equal(z[1], torch.zeros(6, dtype=torch.float64))
    torch.testing.assert_close(band_matvec(bands[:1], z[:1]), rhs[:1])
    with pytest.raises(np.linalg.LinAlgError, match="non-finite"):
        solve_bands(bands, rhs, dense_below=0)


@pytest.mark.parametrize(("t", "lapack_calls"), [(255, 0), (256, 2)])
def test_blocks_of_dense_below_frames_or_more_take_the_banded_route(monkeypatch, t: int,
                                                                    lapack_calls: int) -> None:
    """Faulty variants: the O(T³) dense route taken at T = ``dense_below`` (an off-by-one, or a
    length read from the batch axis), by ``solve_bands`` or by the ``Banded`` solver."""
    import lightning_energy.linalg.banded as banded_module

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return scipy.linalg.solveh_banded(*args, **kwargs)

    monkeypatch.setattr(banded_module, "solveh_banded", counted)
    bands = _spd_bands(2, t, seed=4)
    rhs = torch.randn(2, t, dtype=torch.float64)
    z = solve_bands(bands, rhs)
    assert len(calls) == lapack_calls
    torch.testing.assert_close(band_matvec(bands, z), rhs)

    class Bands:
        def bands(self) -> torch.Tensor:
            return bands[:, None]  # (B, C = 1, 3, T)

    calls.clear()
    v, _ = Banded().solve(Bands(), rhs, 0.0)
    assert len(calls) == lapack_calls
    torch.testing.assert_close(v, z)


def test_band_matvec_takes_any_leading_shape() -> None:
    """Faulty variant: the block length read from axis 1 (the second-neighbour products are
    skipped for a (C, 1, T) stack, and an unbatched vector fails)."""
    bands = _spd_bands(3, 6, seed=6)
    z = torch.randn(3, 6, dtype=torch.float64)
    expected = torch.einsum("bij,bj->bi", dense_from_bands(bands), z)
    torch.testing.assert_close(band_matvec(bands[:, None], z[:, None]), expected[:, None])
    torch.testing.assert_close(band_matvec(bands[0], z[0]), expected[0])
