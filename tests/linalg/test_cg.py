"""The batched conjugate-gradient kernel's own record of each solve."""

import torch

from lightning_energy.linalg import conjugate_gradient


def test_conjugate_gradient_reports_integer_iterations_and_the_true_residual() -> None:
    """Faulty variants: iterations counted in a float tensor, or no residual norm reported."""
    gen = torch.Generator().manual_seed(11)
    m = torch.randn(2, 7, 7, generator=gen, dtype=torch.float64)
    a = m @ m.transpose(1, 2) + 0.5 * torch.eye(7, dtype=torch.float64)
    rhs = torch.randn(2, 7, generator=gen, dtype=torch.float64)
    z, info = conjugate_gradient(lambda v: torch.einsum("bij,bj->bi", a, v), rhs, rtol=1e-6)
    assert info.iterations.dtype == torch.long
    assert bool((info.iterations > 0).all())
    true = torch.linalg.vector_norm(rhs - torch.einsum("bij,bj->bi", a, z), dim=-1)
    torch.testing.assert_close(info.residual_norm, true, rtol=1e-6, atol=1e-12)


def _batched(a: torch.Tensor):
    return lambda v: torch.einsum("bij,bj->bi", a, v)


def test_a_zero_rhs_and_an_exactly_solved_system_stop_without_negative_curvature() -> None:
    """Faulty variants: a zero residual counted as not yet converged (`>=` for `>`), so the
    next direction is zero and its pᵀAp = 0 is reported as negative curvature."""
    a = 2 * torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    rhs = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 3.0]], dtype=torch.float64)
    z, info = conjugate_gradient(_batched(a), rhs, rtol=0.0)  # 2I: one step solves exactly
    assert info.negative_curvature.tolist() == [False, False]
    assert info.iterations.tolist() == [0, 1]
    assert torch.equal(z, rhs / 2)


def test_negative_or_zero_curvature_returns_the_iterate_before_it() -> None:
    """Faulty variants: a finished sample still stepped (α = 1 where it should be 0), or
    pᵀAp = 0 not treated as negative curvature (α = rs / 0)."""
    a = torch.stack([-torch.eye(2, dtype=torch.float64),  # negative at once
                     torch.diag(torch.tensor([1.0, 0.0], dtype=torch.float64)),  # singular
                     torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)])
    rhs = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    z, info = conjugate_gradient(_batched(a), rhs)
    assert info.negative_curvature.tolist() == [True, True, False]
    assert torch.equal(z[:2], torch.zeros(2, 2, dtype=torch.float64))
    torch.testing.assert_close(z[2], torch.linalg.solve(a[2], rhs[2]))
    assert info.iterations.tolist() == [0, 0, 2]
