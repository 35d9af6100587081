"""Energies used as test problems, with known structure."""

from __future__ import annotations

import torch
from torch import Tensor, nn

import lightning_energy as le


class RobustLineFit(le.LeastSquaresEnergy):
    """Huber line fit: residuals wᵢ(yᵢ − a tᵢ − b) over points (t, y), x = (a, b)."""

    solution_shape = (2,)

    def __init__(self, num_points: int, kernel: le.robust.RobustKernel | None = None) -> None:
        super().__init__(kernel if kernel is not None else le.robust.Huber(0.5, learnable=True))
        self.point_weights = nn.Parameter(1 + 0.1 * torch.arange(num_points, dtype=torch.float32))

    def residuals(self, x: Tensor, inputs: tuple[Tensor, Tensor]) -> Tensor:
        t, y = inputs
        pred = x[:, :1] * t + x[:, 1:]
        return self.point_weights.to(x.dtype) * (y - pred)

    def initial_solution(self, inputs: tuple[Tensor, Tensor]) -> Tensor:
        return torch.zeros(inputs[0].shape[0], 2, dtype=inputs[0].dtype, device=inputs[0].device)


class CoupledLogCosh(le.Energy):
    """E = ½ xᵀ(FᵀF + I)x + Σ log cosh(W x − c): smooth, convex, non-quadratic, coupled Hessian."""

    def __init__(self, n: int, m: int, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.factor = nn.Parameter(torch.randn(n, n, generator=gen) / n)
        self.weight = nn.Parameter(torch.randn(m, n, generator=gen))
        self.solution_shape = (n,)

    def forward(self, x: Tensor, inputs: Tensor) -> Tensor:
        f = self.factor.to(x.dtype)
        quad = 0.5 * ((x @ f.T) ** 2).sum(-1) + 0.5 * (x**2).sum(-1)
        z = x @ self.weight.to(x.dtype).T - inputs
        return quad + (z.abs() + torch.log1p(torch.exp(-2 * z.abs())) - 0.6931471805599453).sum(-1)

    def initial_solution(self, inputs: Tensor) -> Tensor:
        return torch.zeros(inputs.shape[0], self.factor.shape[0], dtype=inputs.dtype,
                           device=inputs.device)


class LinearResiduals(le.LeastSquaresEnergy):
    """r = A x − c with A a parameter: Gauss–Newton equals the exact Hessian here."""

    def __init__(self, n: int, m: int, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(torch.randn(m, n, generator=gen))
        self.solution_shape = (n,)

    def residuals(self, x: Tensor, inputs: Tensor) -> Tensor:
        return x @ self.a.to(x.dtype).T - inputs

    def initial_solution(self, inputs: Tensor) -> Tensor:
        return torch.zeros(inputs.shape[0], self.a.shape[1], dtype=inputs.dtype,
                           device=inputs.device)


class DoubleWell(le.Energy):
    """E = (x² − θ)² per coordinate: indefinite Hessian at x = 0."""

    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: Tensor, inputs: Tensor) -> Tensor:
        return ((x**2 - self.theta.to(x.dtype) - inputs) ** 2).sum(-1)


def line_data(batch: int, points: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Noisy lines with a few gross outliers, float64."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.linspace(-1, 1, points, dtype=torch.float64).expand(batch, points).clone()
    slope = torch.randn(batch, 1, generator=gen, dtype=torch.float64)
    y = slope * t + 0.3 + 0.05 * torch.randn(batch, points, generator=gen, dtype=torch.float64)
    y[:, ::5] += 3.0
    return t, y


class WobblyTrack(le.SequenceLeastSquaresEnergy):
    """A nonlinear sequence energy with every residual kind: p = 3 per frame, s shared.

    Frame t: robust data term on sin(x_t) + a shared offset, coupled to the shared variables
    through a learnable matrix; pairs: a learnable-weight smoothness term with a cubic part and
    a product with the first shared variable; shared: a learnable-weight prior. Inputs: the
    observations (B, T, 3).
    """

    frame_size = 3

    def __init__(self, shared_size: int = 2) -> None:
        super().__init__(le.robust.Cauchy(1.5, learnable=True))
        self.shared_size = shared_size
        self.coupling = nn.Parameter(0.3 * torch.randn(3, shared_size,
                                                       generator=torch.Generator().manual_seed(0)))
        self.log_smooth = nn.Parameter(torch.tensor(0.5))
        self.log_prior = nn.Parameter(torch.tensor(0.0))

    def frame_residuals(self, frames: Tensor, shared: Tensor, inputs: Tensor) -> Tensor:
        offset = shared @ self.coupling.to(shared.dtype).T  # (B, 3)
        data = torch.sin(frames) + 0.5 * frames - inputs + offset[:, None]
        return torch.cat([data, 0.1 * frames[..., :1] ** 2], -1)

    def pair_residuals(self, frames: Tensor, shared: Tensor, inputs: Tensor) -> Tensor:
        step = frames[:, 1:] - frames[:, :-1]
        weight = self.log_smooth.to(frames.dtype).exp()
        mixed = 0.2 * step[..., :1] ** 3 + 0.1 * shared[:, None, :1] * frames[:, 1:, 1:2]
        return torch.cat([weight * step, mixed], -1)

    def shared_residuals(self, shared: Tensor, inputs: Tensor) -> Tensor:
        return self.log_prior.to(shared.dtype).exp() * shared

    def initial_solution(self, inputs: Tensor) -> Tensor:
        b, _t, _ = inputs.shape
        return torch.cat([0.5 * inputs.reshape(b, -1),
                          inputs.new_zeros(b, self.shared_size)], 1)
