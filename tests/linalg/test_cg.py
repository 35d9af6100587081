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
