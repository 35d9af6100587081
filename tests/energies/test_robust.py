"""Robust kernels: ρ against their documented formulas, ρ′ (`weight`) and ρ″ against autograd."""

import math

import pytest
import torch
from torch.func import jvp

from lightning_energy.energies.robust import Cauchy, GemanMcClure, Huber, PseudoHuber, RobustKernel

KERNELS = [Huber, PseudoHuber, Cauchy, GemanMcClure]


def _formula(kernel: RobustKernel, s: torch.Tensor) -> torch.Tensor:
    """ρ(s) as the class docstrings write it, δ the kernel's scale."""
    d = float(kernel.scale)
    if isinstance(kernel, Huber):
        return torch.where(s <= d**2, s, 2 * d * s.sqrt() - d**2)
    if isinstance(kernel, PseudoHuber):
        return 2 * d**2 * (torch.sqrt(1 + s / d**2) - 1)
    if isinstance(kernel, Cauchy):
        return d**2 * torch.log1p(s / d**2)
    return s * d**2 / (s + d**2)


def _squared(scale: float) -> torch.Tensor:
    """Squared residuals from 1e-4 δ² to 25 δ², away from Huber's kink at s = δ²."""
    s = scale**2 * torch.logspace(-4, math.log10(25), 41, dtype=torch.float64)
    return s[(s - scale**2).abs() > 1e-3 * scale**2]


@pytest.mark.parametrize("scale", [0.3, 2.0])
@pytest.mark.parametrize("kind", KERNELS)
def test_rho_matches_its_documented_formula(kind, scale):
    """Faulty variant: a kernel's ρ loses its δ² factor, or Huber switches at δ instead of δ²."""
    kernel = kind(scale).double()
    s = _squared(scale)
    assert torch.allclose(kernel(s), _formula(kernel, s), rtol=1e-12, atol=0)
    small = torch.tensor([1e-10], dtype=torch.float64) * scale**2
    assert torch.allclose(kernel(small) / small, torch.ones(1, dtype=torch.float64), rtol=1e-6)


@pytest.mark.parametrize("scale", [0.3, 2.0])
@pytest.mark.parametrize("kind", KERNELS)
def test_weight_is_the_derivative_of_rho(kind, scale):
    """Faulty variant: Cauchy's weight 1/(1 + s/δ²)² (or any ρ′ that is not dρ/ds)."""
    kernel = kind(scale).double()
    s = _squared(scale).requires_grad_(True)
    (autograd,) = torch.autograd.grad(kernel(s).sum(), s)
    assert torch.allclose(kernel.weight(s.detach()), autograd, rtol=1e-10, atol=0)
    assert float(kernel.weight(torch.zeros(1, dtype=torch.float64))) == pytest.approx(1.0)


@pytest.mark.parametrize("scale", [0.3, 2.0])
@pytest.mark.parametrize("kind", KERNELS)
def test_forward_mode_derivative_of_weight_is_the_second_derivative_of_rho(kind, scale):
    """Faulty variant: a `weight` whose forward-mode derivative is not ρ″.

    The tracking energy's ``hessian_bands`` takes ρ″ as ``jvp`` of ``weight``.
    """
    kernel = kind(scale).double()
    s = _squared(scale).requires_grad_(True)
    (first,) = torch.autograd.grad(kernel(s).sum(), s, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), s)
    rho2 = jvp(kernel.weight, (s.detach(),), (torch.ones_like(s),))[1]
    assert torch.allclose(rho2, second, rtol=1e-9, atol=1e-14 / scale**4)


@pytest.mark.parametrize("kind", KERNELS)
def test_scale_is_a_parameter_only_when_learnable(kind):
    """Faulty variant: `learnable=True` registers log δ as a buffer (δ would never train)."""
    fixed, learned = kind(0.7), kind(0.7, learnable=True)
    assert float(fixed.scale) == pytest.approx(0.7)
    assert float(learned.scale.detach()) == pytest.approx(0.7)
    assert not list(fixed.parameters())
    assert "log_scale" in dict(fixed.named_buffers())
    assert [name for name, _ in learned.named_parameters()] == ["log_scale"]
    s = torch.tensor([0.01, 1.0, 9.0])
    learned(s).sum().backward()
    assert learned.log_scale.grad is not None
    assert float(learned.log_scale.grad.abs()) > 0


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_non_positive_scale_is_refused(scale):
    with pytest.raises(ValueError, match="`scale` > 0"):
        Cauchy(scale)


def test_base_kernel_is_abstract():
    kernel = RobustKernel()
    with pytest.raises(NotImplementedError):
        kernel(torch.ones(2))
    with pytest.raises(NotImplementedError):
        kernel.weight(torch.ones(2))


@pytest.mark.parametrize("kind", KERNELS)
def test_default_scale_is_one(kind):
    """Faulty variant: another default δ (recipes that give no scale would change)."""
    assert float(kind().scale) == 1.0


def test_a_kernel_of_ones_own_gets_its_second_derivative_by_forward_mode():
    """Faulty variant: the base class's default ρ'' (for kernels that define only ρ and ρ') not
    the derivative of ρ' (a wrong tangent, or the weight itself); no built-in kernel reaches it."""

    class OwnCauchy(RobustKernel):
        def forward(self, squared):
            return self.scale**2 * torch.log1p(squared / self.scale**2)

        def weight(self, squared):
            return (1 + squared / self.scale**2).reciprocal()

    squared = torch.tensor([0.0, 0.3, 2.0, 9.0], dtype=torch.float64)
    own, builtin = OwnCauchy(0.7).double(), Cauchy(0.7).double()
    torch.testing.assert_close(own.weight_derivative(squared), builtin.weight_derivative(squared))


def test_huber_boundary_belongs_to_the_quadratic_core():
    """Faulty variant: ρ'' at s = δ² taken from the linear tail while ρ' there is the core's."""
    kernel = Huber(1.0).double()  # δ = exp(0) exactly, so s = δ² is representable
    boundary = torch.tensor([1.0], dtype=torch.float64)
    assert kernel.weight(boundary).tolist() == [1.0]
    assert kernel.weight_derivative(boundary).tolist() == [0.0]
