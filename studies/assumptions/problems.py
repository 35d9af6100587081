"""The study's two toys: a robust (Cauchy) linear regression and the kernel-density mode.

The regression has an n-dimensional Hessian whose conditioning is set per sample by the
correlation of the features and the share of outlying targets; the kernel-density mode of the
``robust_mean`` recipe is the 1-D case. Both are solved in float64 throughout.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

import lightning_energy as le
from lightning_energy.datasets.toy import RobustMeanDataset

CORRELATIONS = (0.0, 0.9, 0.99)
"""Feature correlations drawn per sample: the common factor makes AᵀA ill-conditioned."""


class RobustRegression(le.LeastSquaresEnergy):
    """E(x) = ½ Σᵢ log(1 + (yᵢ − aᵢᵀx)²/δ²) + ½ Σⱼ wⱼ xⱼ², θ = (log w, log δ).

    The Cauchy data term redescends (its curvature is negative for |r| > δ), so outliers can
    make the Hessian indefinite away from x* and near-singular at it. ``inputs`` is a dict with
    ``features`` (B, m, n) and ``targets`` (B, m); an optional ``theta`` (B, n + 1) replaces the
    shared parameters per sample, so that one batched backward pass gives per-sample gradients.
    """

    def __init__(self, n: int, weight: float = 1e-2, scale: float = 1.0) -> None:
        super().__init__()
        self.n, self.solution_shape = n, (n,)
        self.log_weight = nn.Parameter(torch.full((n,), math.log(weight), dtype=torch.float64))
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale), dtype=torch.float64))

    def theta(self, inputs: dict[str, Tensor]) -> Tensor:
        """Per-sample (log w, log δ), (B, n + 1)."""
        if "theta" in inputs:
            return inputs["theta"]
        shared = torch.cat([self.log_weight, self.log_scale[None]])
        return shared.expand(inputs["targets"].shape[0], -1)

    def residuals(self, x: Tensor, inputs: dict[str, Tensor]) -> Tensor:  # noqa: D102
        theta = self.theta(inputs).to(x.dtype)
        fit = torch.einsum("bmn,bn->bm", inputs["features"].to(x.dtype), x)
        data = (inputs["targets"].to(x.dtype) - fit) / theta[:, -1:].exp()
        return torch.cat([data, (0.5 * theta[:, :-1]).exp() * x], -1)

    def rho(self, squared: Tensor) -> Tensor:  # noqa: D102
        m = squared.shape[-1] - self.n
        return torch.cat([torch.log1p(squared[..., :m]), squared[..., m:]], -1)

    def weights(self, squared: Tensor) -> Tensor:  # noqa: D102
        m = squared.shape[-1] - self.n
        return torch.cat([1 / (1 + squared[..., :m]), torch.ones_like(squared[..., m:])], -1)

    def initial_solution(self, inputs: dict[str, Tensor]) -> Tensor:  # noqa: D102
        return inputs["targets"].new_zeros(inputs["targets"].shape[0], self.n)


def regression_data(num: int, n: int, m: int, seed: int, noise: float = 0.3,
                    max_outliers: float = 0.5) -> dict[str, Tensor]:
    """Samples of the regression toy: inputs, the true x and what set each one's conditioning.

    x ~ N(0, I); features share a common factor with correlation c ∈ :data:`CORRELATIONS`;
    targets get N(0, noise²) noise, and a share f ~ U(0, ``max_outliers``) of them is replaced
    by U(−15, 15).
    """
    gen = torch.Generator().manual_seed(seed)
    f64 = {"generator": gen, "dtype": torch.float64}
    x_true = torch.randn(num, n, **f64)
    corr = torch.tensor(CORRELATIONS, dtype=torch.float64)[torch.randint(3, (num,), generator=gen)]
    common = torch.randn(num, m, 1, **f64)
    own = torch.randn(num, m, n, **f64)
    features = (1 - corr).sqrt()[:, None, None] * own + corr.sqrt()[:, None, None] * common
    targets = torch.einsum("bmn,bn->bm", features, x_true) + noise * torch.randn(num, m, **f64)
    share = max_outliers * torch.rand(num, 1, **f64)
    outlier = torch.rand(num, m, **f64) < share
    targets = torch.where(outlier, 30 * torch.rand(num, m, **f64) - 15, targets)
    return {"features": features, "targets": targets, "x_true": x_true, "correlation": corr,
            "outlier_share": outlier.double().mean(-1)}


def regression_inputs(data: dict[str, Tensor], theta: Tensor | None = None) -> dict[str, Tensor]:
    """The energy's inputs from :func:`regression_data`, optionally with per-sample θ."""
    inputs = {"features": data["features"], "targets": data["targets"]}
    return inputs if theta is None else {**inputs, "theta": theta}


def kde_data(num: int, seed: int, num_points: int = 32) -> dict[str, Tensor]:
    """Samples of the ``robust_mean`` recipe's data (up to 75% uniform outliers), float64."""
    dataset = RobustMeanDataset(num, num_points=num_points, seed=seed)
    items = [dataset[i] for i in range(num)]
    return {key: torch.stack([torch.as_tensor(item[key]) for item in items]).double()
            for key in ("points", "location", "scale", "outlier_fraction")}


def kde_solver() -> le.MultiStart:
    """The recipe's inner solver (Newton from five starts), in float64."""
    starts = [[-6.0], [-3.0], [0.0], [3.0], [6.0]]
    return le.MultiStart(le.Newton(max_steps=30, tol=1e-5, dtype="float64"), starts)


def tight_newton() -> le.Newton:
    """The reference solver: Newton to ‖∇ₓE‖ ≤ 1e-12 in float64."""
    return le.Newton(max_steps=200, tol=1e-12, dtype="float64")


def exact_hessian(energy: le.Energy, x: Tensor, inputs: Any) -> Tensor:
    """∇²ₓE at x for every sample, (B, n, n), by n reverse-over-reverse products (float64)."""
    with torch.enable_grad():
        z = x.detach().double().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(z, inputs).sum(), z, create_graph=True)
        rows = [torch.autograd.grad(grad[:, j].sum(), z, retain_graph=True)[0]
                for j in range(z.shape[1])]
    hess = torch.stack(rows, 1).detach()
    return 0.5 * (hess + hess.transpose(1, 2))


def eigenvalues(energy: le.Energy, x: Tensor, inputs: Any) -> Tensor:
    """Eigenvalues of the exact Hessian at x, ascending, (B, n)."""
    return torch.linalg.eigvalsh(exact_hessian(energy, x, inputs))


class Case:
    """A batch of one toy with per-sample parameters θ (B, p) fed as inputs.

    Args:
        energy: The toy's energy (float64).
        make_inputs: θ (B, p) ↦ the energy's inputs carrying it.
        theta: The per-sample parameters the gradients are taken at.
        target: The true x (B, n); the loss of sample b is ½‖x*_b − target_b‖².
        x_star: The tightly converged minimiser at ``theta`` (B, n).
        tight: The re-solves' solver; default :func:`tight_newton`.
        loss: The per-sample loss of x (B, n) → (B,) where it is not ½‖x − target‖² (a real
            task's loss; ``target`` must then be x* − ∂L/∂x at x*, the same gradient there).
        converged: Whether the tight solve that gave x* converged (B,); the comparisons leave
            the others out. Default: all.
    """

    def __init__(self, energy: le.Energy, make_inputs: Any, theta: Tensor, target: Tensor,
                 x_star: Tensor, tight: le.Solver | None = None, loss: Any = None,
                 converged: Tensor | None = None) -> None:
        self.energy, self.make_inputs, self.theta = energy, make_inputs, theta
        self.target, self.x_star = target, x_star
        self.converged = (torch.ones(x_star.shape[0], dtype=torch.bool) if converged is None
                          else converged)
        self.tight = tight or tight_newton()
        self._loss = loss

    def loss(self, x: Tensor) -> Tensor:
        """Per-sample loss (B,) at any x of the solution's shape, differentiably."""
        x = x.reshape(self.x_star.shape)
        if self._loss is not None:
            return self._loss(x)
        return 0.5 * ((x - self.target) ** 2).sum(-1)

    def solve(self, theta: Tensor, solver: le.Solver | None = None,
              x0: Tensor | None = None) -> le.Solution:
        """x*(θ) without gradients, warm-started at x* unless ``x0`` says otherwise."""
        with torch.no_grad():
            return le.argmin(self.energy, self.make_inputs(theta), solver=solver or self.tight,
                             x0=self.x_star if x0 is None else x0, nonconverged="mask")


def regression_case(energy: RobustRegression, data: dict[str, Tensor],
                    solver: le.Solver) -> Case:
    """The regression batch at the energy's current θ, x* refined from ``solver``'s solution."""
    theta = energy.theta(regression_inputs(data)).detach().clone()
    inputs = regression_inputs(data, theta)
    with torch.no_grad():
        rough = le.argmin(energy, inputs, solver=solver, nonconverged="mask").x
        tight = le.argmin(energy, inputs, solver=tight_newton(), x0=rough, nonconverged="mask")
    return Case(energy, lambda t: regression_inputs(data, t), theta, data["x_true"], tight.x,
                converged=tight.converged)


def kde_case(energy: le.KernelDensityEnergy, data: dict[str, Tensor]) -> Case:
    """The kernel-density batch, θ = the per-point weights (all 1), x* refined by Newton."""
    points = data["points"]
    theta = torch.ones_like(points)
    with torch.no_grad():
        rough = le.argmin(energy, (points, theta), solver=kde_solver(), nonconverged="mask").x
        tight = le.argmin(energy, (points, theta), solver=tight_newton(), x0=rough,
                          nonconverged="mask")
    return Case(energy, lambda t: (points, t), theta, data["location"][:, None], tight.x,
                converged=tight.converged)
