"""Helpers for users' own tests of custom energies.

:func:`check_energy` runs the checks every energy should pass before it is trained: output shape,
finiteness, stationarity at the solver's solution, and the implicit adjoint against central finite
differences of a tightly converged argmin, all in float64. :func:`check_jacobian` and
:func:`check_gauss_newton_system` compare a least-squares energy's closed-form residual Jacobian
and Gauss–Newton system with automatic differentiation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lightning_energy._tree import tree_leaves, tree_map, tree_replace_leaves
from lightning_energy.adjoints.implicit import ImplicitAdjoint
from lightning_energy.energies.base import Energy, LeastSquaresEnergy
from lightning_energy.errors import ShapeError, describe
from lightning_energy.layer import EnergyLayer
from lightning_energy.solvers.base import Solver
from lightning_energy.solvers.newton import Newton
from lightning_energy.solvers.problem import Problem


@dataclass
class EnergyCheckReport:
    """What :func:`check_energy` measured.

    Attributes:
        grad_norm: Largest ‖∇ₓE‖ at the solution.
        param_error: Relative error of the adjoint's directional derivative w.r.t. the energy
            parameters against finite differences (NaN when the energy has none).
        input_error: The same for the floating inputs (NaN when there are none).

    Example:
        >>> import torch, lightning_energy as le
        >>> report = le.testing.check_energy(le.QuadraticEnergy(2), torch.randn(4, 2))
        >>> report.input_error < 1e-5, report.grad_norm < 1e-6
        (True, True)
    """

    grad_norm: float
    param_error: float
    input_error: float


def central_difference(fn: Callable[[float], Tensor], step: float) -> Tensor:
    """(fn(+h) − fn(−h)) / 2h: second-order accurate derivative of ``fn`` at 0.

    Example:
        >>> import torch
        >>> from lightning_energy.testing import central_difference
        >>> x = torch.tensor(2.0, dtype=torch.float64)
        >>> round(float(central_difference(lambda h: (x + h) ** 3, 1e-4)), 6)  # 3 x²
        12.0
    """
    return (fn(step) - fn(-step)) / (2 * step)


def relative_error(a: Tensor, b: Tensor) -> float:
    """‖a − b‖ / max(‖a‖, ‖b‖, tiny).

    Example:
        >>> import torch
        >>> from lightning_energy.testing import relative_error
        >>> relative_error(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 3.0]))
        0.2
    """
    a, b = a.detach(), b.detach()
    scale = max(float(a.norm()), float(b.norm()), 1e-300)
    return float((a - b).norm()) / scale


def check_energy(
    energy: Energy,
    inputs: Any,
    x0: Tensor | None = None,
    solver: Solver | None = None,
    tol: float = 1e-5,
    step: float = 1e-4,
    seed: int = 0,
) -> EnergyCheckReport:
    """Check an energy's shapes, finiteness, stationarity and implicit gradients in float64.

    The energy and inputs are copied and cast to float64. The solver (default
    ``Newton(tol=1e-12, max_steps=200)``) must converge; the exact implicit adjoint (λ = 0) is
    compared with central finite differences of the re-solved argmin along one random direction
    of all parameters and one of all floating inputs.

    Args:
        energy: The energy under test (not modified).
        inputs: Per-sample inputs, leading dimension B.
        x0: Starting points (B, *shape); default ``energy.initial_solution(inputs)``.
        solver: Inner solver; must reach ‖∇ₓE‖ ≤ 1e-8 or so for the comparison to be meaningful.
        tol: Largest relative error accepted.
        step: Finite-difference step along the unit direction.
        seed: Seed of the random directions and of the loss weights.

    Returns:
        An :class:`EnergyCheckReport`.

    Raises:
        AssertionError: A check failed; the message says which and by how much.

    Example:
        >>> import torch, lightning_energy as le
        >>> from lightning_energy.testing import check_energy
        >>> report = check_energy(le.QuadraticEnergy(3), torch.randn(4, 3))
        >>> report.param_error < 1e-5
        True
    """
    energy = copy.deepcopy(energy).double()
    inputs = tree_map(lambda t: t.detach().double() if t.is_floating_point() else t, inputs)
    solver = solver or Newton(tol=1e-12, max_steps=200, dtype="float64")
    layer = EnergyLayer(energy, solver, ImplicitAdjoint(damping=0.0), nonconverged="raise")
    x0 = energy.initial_solution(inputs) if x0 is None else x0.detach().double()
    _check_value(energy, x0, inputs)
    gen = torch.Generator().manual_seed(seed)
    solution = layer(inputs, x0)
    weights = torch.randn(solution.x.shape, generator=gen, dtype=torch.float64)
    grad_norm = float(solution.grad_norm.max())

    def loss(perturbed_inputs: Any) -> Tensor:
        with torch.no_grad():
            return (layer(perturbed_inputs, solution.x.detach()).x * weights).sum()

    params: list[Tensor] = [p for p in energy.parameters() if p.requires_grad]
    param_error = _param_check(layer, params, inputs, x0, weights, loss, step, gen)
    input_error = _input_check(layer, inputs, x0, weights, loss, step, gen)
    for name, err in (("parameters", param_error), ("inputs", input_error)):
        if err == err and err > tol:  # NaN means nothing to check
            raise AssertionError(f"Implicit gradient w.r.t. {name} differs from central finite "
                                 f"differences by {err:.2e} (relative) > tol={tol:.0e}.")
    return EnergyCheckReport(grad_norm, param_error, input_error)


def _check_value(energy: Energy, x0: Tensor, inputs: Any) -> None:
    value = energy(x0, inputs)
    if value.shape != (x0.shape[0],):
        raise ShapeError(f"Expected `{type(energy).__name__}.forward` to return shape "
                         f"({x0.shape[0]},), got {describe(value)}.")
    if not bool(torch.isfinite(value).all()):
        raise AssertionError("The energy is not finite at the initial solution.")


def _dot(grads: tuple[Tensor | None, ...], dirs: list[Tensor]) -> Tensor:
    """Σ ⟨g, d⟩ over tensors, an unused (None) gradient counting as zero."""
    total = torch.zeros((), dtype=torch.float64)
    for g, d in zip(grads, dirs, strict=True):
        if g is not None:
            total = total + (g * d).sum()
    return total


def _directions(tensors: list[Tensor], gen: torch.Generator) -> list[Tensor]:
    dirs = [torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in tensors]
    norm = torch.stack([(d**2).sum() for d in dirs]).sum().sqrt()
    return [d / norm for d in dirs]


def _param_check(layer: EnergyLayer, params: list[Tensor], inputs: Any, x0: Tensor,
                 weights: Tensor, loss: Callable[[Any], Tensor], step: float,
                 gen: torch.Generator) -> float:
    if not params:
        return float("nan")
    dirs = _directions(params, gen)
    grads = torch.autograd.grad((layer(inputs, x0).x * weights).sum(), params, allow_unused=True)
    analytic = _dot(grads, dirs)
    originals = [p.detach().clone() for p in params]

    def shifted(h: float) -> Tensor:
        with torch.no_grad():
            for p, o, d in zip(params, originals, dirs, strict=True):
                p.copy_(o + h * d)
        out = loss(inputs)
        with torch.no_grad():
            for p, o in zip(params, originals, strict=True):
                p.copy_(o)
        return out

    return relative_error(analytic, central_difference(shifted, step))


def _input_check(layer: EnergyLayer, inputs: Any, x0: Tensor, weights: Tensor,
                 loss: Callable[[Any], Tensor], step: float, gen: torch.Generator) -> float:
    leaves = tree_leaves(inputs)
    floats = [i for i, t in enumerate(leaves) if t.is_floating_point()]
    if not floats:
        return float("nan")
    live = [leaves[i].clone().requires_grad_(True) for i in floats]
    dirs = _directions(live, gen)

    def rebuild(values: list[Tensor]) -> Any:
        new = list(leaves)
        for i, v in zip(floats, values, strict=True):
            new[i] = v
        return tree_replace_leaves(inputs, new)

    out = (layer(rebuild(live), x0).x * weights).sum()
    grads = torch.autograd.grad(out, live, allow_unused=True)
    analytic = _dot(grads, dirs)
    base = [leaves[i] for i in floats]
    numeric = central_difference(
        lambda h: loss(rebuild([b + h * d for b, d in zip(base, dirs, strict=True)])), step)
    return relative_error(analytic, numeric)


def check_jacobian(energy: LeastSquaresEnergy, inputs: Any, x: Tensor | None = None,
                   tol: float = 1e-9, seed: int = 0) -> tuple[float, float]:
    """Check :meth:`~LeastSquaresEnergy.residuals_and_jacobian` against autograd, in float64.

    Compares the residuals and the Jacobian (B, m, n) with forward-mode automatic
    differentiation of :meth:`~LeastSquaresEnergy.residuals`, and the derivative of
    ⟨W, Jacobian⟩ for a random W with respect to the energy parameters (what unrolled
    differentiation uses).

    Args:
        energy: The energy under test (not modified).
        inputs: Per-sample inputs, leading dimension B.
        x: Points (B, *shape); default the initial solution plus a seeded Gaussian perturbation
            of standard deviation 0.1.
        tol: Largest relative error accepted.
        seed: Seed of the perturbation and of W.

    Returns:
        Relative errors of the Jacobian and of its parameter derivative (NaN without
        parameters).

    Raises:
        AssertionError: A comparison failed; the message says which and by how much.

    Example:
        >>> import torch, lightning_energy as le
        >>> from lightning_energy.testing import check_jacobian
        >>> class Shifted(le.LeastSquaresEnergy):  # r(x) = x − c − s, J = I
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.shift = torch.nn.Parameter(torch.ones(2))
        ...     def residuals(self, x, inputs):
        ...         return x - inputs - self.shift.to(x.dtype)
        ...     def residuals_and_jacobian(self, x, inputs):
        ...         eye = torch.eye(2, dtype=x.dtype).expand(x.shape[0], 2, 2)
        ...         return self.residuals(x, inputs), eye
        >>> jacobian_error, _ = check_jacobian(Shifted(), torch.randn(4, 2), torch.randn(4, 2))
        >>> jacobian_error < 1e-12
        True
    """
    energy, inputs, flat, problem = _closed_form_setup(energy, inputs, x, seed,
                                                       "residuals_and_jacobian")
    r, jac = problem.jacobian(flat)
    r_ref, jac_ref = problem._forward_jacobian(flat)
    if relative_error(r, r_ref) > tol:
        raise AssertionError(f"residuals_and_jacobian's residuals differ from residuals() by "
                             f"{relative_error(r, r_ref):.2e} (relative) > tol={tol:.0e}.")
    return _compare("closed-form Jacobian", (jac,), (jac_ref,), energy, tol, seed)


def check_gauss_newton_system(energy: LeastSquaresEnergy, inputs: Any, x: Tensor | None = None,
                              tol: float = 1e-9, seed: int = 0) -> tuple[float, float]:
    """Check :meth:`~LeastSquaresEnergy.gauss_newton_system` against autograd, in float64.

    Compares the energies, gradients and Gauss–Newton matrices with the system formed from the
    forward-mode Jacobian of :meth:`~LeastSquaresEnergy.residuals`
    (:meth:`~LeastSquaresEnergy.system_from_jacobian`), and the derivative of a random linear
    function of the gradients and matrices with respect to the energy parameters.

    Args:
        energy: The energy under test (not modified).
        inputs: Per-sample inputs, leading dimension B.
        x: Points (B, *shape); default the initial solution plus a seeded Gaussian perturbation
            of standard deviation 0.1.
        tol: Largest relative error accepted.
        seed: Seed of the perturbation and of the random linear function.

    Returns:
        Relative errors of the system (its largest over value, gradient and matrix) and of its
        parameter derivative (NaN without parameters).

    Raises:
        AssertionError: A comparison failed; the message says which and by how much.

    Example:
        >>> import torch, lightning_energy as le
        >>> from lightning_energy.testing import check_gauss_newton_system
        >>> class Scaled(le.LeastSquaresEnergy):  # r(x) = s ⊙ (x − c), JᵀJ = diag(s²)
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.scale = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
        ...     def residuals(self, x, inputs):
        ...         return self.scale.to(x.dtype) * (x - inputs)
        ...     def gauss_newton_system(self, x, inputs):
        ...         s = self.scale.to(x.dtype)
        ...         r = self.residuals(x, inputs)
        ...         return 0.5 * (r**2).sum(-1), s * r, torch.diag_embed((s**2).expand_as(x))
        >>> error, _ = check_gauss_newton_system(Scaled(), torch.randn(4, 2), torch.randn(4, 2))
        >>> error < 1e-12
        True
    """
    energy, inputs, flat, problem = _closed_form_setup(energy, inputs, x, seed,
                                                       "gauss_newton_system")
    system = problem.gauss_newton(flat)
    reference = problem.call("system_from_jacobian", *problem._forward_jacobian(flat))
    return _compare("closed-form Gauss-Newton system", system, reference, energy, tol, seed)


_PROVIDES = {"residuals_and_jacobian": "has_jacobian",
             "gauss_newton_system": "has_gauss_newton_system"}


def _closed_form_setup(energy: LeastSquaresEnergy, inputs: Any, x: Tensor | None, seed: int,
                       method: str) -> tuple[LeastSquaresEnergy, Any, Tensor, Problem]:
    """A float64 copy of ``energy``, its inputs, flat points (B, n) and a live problem.

    Raises ``AssertionError`` when the energy does not provide ``method`` in closed form.
    """
    if not getattr(energy, _PROVIDES[method]):
        raise AssertionError(f"{type(energy).__name__} does not implement {method} "
                             f"(or has closed_form_jacobian = False).")
    energy = copy.deepcopy(energy).double()
    inputs = tree_map(lambda t: t.detach().double() if t.is_floating_point() else t, inputs)
    if x is None:
        gen = torch.Generator().manual_seed(seed)
        x = energy.initial_solution(inputs).double()
        x = x + 0.1 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    x = x.detach().double()
    problem = Problem(energy, inputs, tuple(x.shape[1:]), detach=False)
    return energy, inputs, x.reshape(x.shape[0], -1), problem


def _compare(what: str, closed: Sequence[Tensor], reference: Sequence[Tensor],
             energy: LeastSquaresEnergy, tol: float, seed: int) -> tuple[float, float]:
    """Relative errors of ``closed`` against ``reference`` and of their parameter derivatives."""
    error = max(relative_error(a, b) for a, b in zip(closed, reference, strict=True))
    if error > tol:
        raise AssertionError(f"The {what} differs from autograd's by {error:.2e} (relative) > "
                             f"tol={tol:.0e}.")
    params = [p for p in energy.parameters() if p.requires_grad]
    if not params:
        return error, float("nan")
    gen = torch.Generator().manual_seed(seed + 1)
    weights = [torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in closed]
    flat_grads = _flat_grad(_weighted_sum(closed, weights), params)
    flat_ref = _flat_grad(_weighted_sum(reference, weights), params)
    param_error = relative_error(flat_grads, flat_ref)
    if param_error > tol:
        raise AssertionError(f"The {what}'s derivative w.r.t. the parameters differs from "
                             f"autograd's by {param_error:.2e} (relative) > tol={tol:.0e}.")
    return error, param_error


def _weighted_sum(tensors: Sequence[Tensor], weights: Sequence[Tensor]) -> Tensor:
    """Σₖ ⟨tensors[k], weights[k]⟩, a random linear function of ``tensors``."""
    return torch.stack([(t * w).sum() for t, w in zip(tensors, weights, strict=True)]).sum()


def _flat_grad(out: Tensor, params: Sequence[Tensor]) -> Tensor:
    """∂out/∂params as one flat vector, zero for every parameter ``out`` does not depend on.

    A Jacobian may depend on no parameter at all (a learnable robust-kernel scale enters the
    energy but not the residuals), and then ``out`` has no graph to differentiate.
    """
    grads = (torch.autograd.grad(out, params, allow_unused=True) if out.requires_grad
             else (None,) * len(params))
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                      for g, p in zip(grads, params, strict=True)])
