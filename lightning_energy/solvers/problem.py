"""An energy bound to its inputs and parameters, seen as a batched function of flat x (B, n).

Solvers and adjoints talk to energies only through :class:`Problem`, which evaluates values,
gradients, Hessian-vector products, dense Hessians and residual Jacobians for the whole batch at
once. Because the B problems are independent, ∇ of the *summed* energy is the per-sample gradient,
and one product with a batched tangent gives every sample's Hessian-vector product together.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value

from lightning_energy._tree import tree_map
from lightning_energy.energies.base import Energy, LeastSquaresEnergy
from lightning_energy.errors import ShapeError, describe


def cast_inputs(inputs: Any, dtype: torch.dtype | None) -> Any:
    """Cast the floating tensors of ``inputs`` to ``dtype`` (differentiably); others unchanged."""
    if dtype is None:
        return inputs
    return tree_map(lambda t: t.to(dtype) if t.is_floating_point() else t, inputs)


def energy_state(energy: Energy, dtype: torch.dtype | None, detach: bool) -> dict[str, Tensor]:
    """Parameters and buffers of ``energy`` by name, optionally detached and cast to ``dtype``."""
    state: dict[str, Tensor] = dict(energy.named_parameters())
    state.update(dict(energy.named_buffers()))
    out = {}
    for name, t in state.items():
        t = t.detach() if detach else t
        out[name] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    return out


CPU_FORWARD_MODE_MIN_N = 15
CPU_FORWARD_MODE_MAX_BN = {"hessian": 1024, "jacobian": 16384}
"""On a CPU, dense derivatives take the vectorised forward-mode pass when n ≥
``CPU_FORWARD_MODE_MIN_N`` and B·n is at most ``CPU_FORWARD_MODE_MAX_BN`` of their kind, else the
loop of n reverse passes. The loop pays n passes' dispatch, which a large batch's arithmetic
hides; forward mode pays a fixed set-up per call, which a few variables do not repay. Measured on
the implicit adjoint's solves (docs/benchmarks.md, "How the batch Hessian is built"): at n ≤ 8
forward mode was up to 3× slower; at n = 15–65 it was faster for the Jacobian up to
B·n ≈ 16,000 (1.04–4×; at 30,000 the loop won) and for the exact Hessian up to B·n ≈ 1,000
(1.2–4.3×; from 4,000 on the loop won for n ≤ 30)."""


class Problem:
    """Batched functional view of ``energy(x, inputs)`` with ``x`` flattened to (B, n).

    Args:
        energy: The energy module.
        inputs: Per-sample data (tensors with leading dimension B).
        shape: The per-sample solution shape (``x`` is reshaped to (B, *shape) for the energy).
        dtype: Compute dtype; parameters and floating inputs are cast to it.
        detach: Use detached parameters and inputs (the no-grad solve); ``False`` keeps the
            autograd graph to them (unrolled differentiation, the adjoint's final product).
    """

    def __init__(
        self,
        energy: Energy,
        inputs: Any,
        shape: tuple[int, ...],
        dtype: torch.dtype | None = None,
        detach: bool = True,
    ) -> None:
        self.energy = energy
        self.shape = tuple(shape)
        self.detached = detach
        self.params = energy_state(energy, dtype, detach)
        inputs = tree_map(lambda t: t.detach(), inputs) if detach else inputs
        self.inputs = cast_inputs(inputs, dtype)

    @property
    def is_least_squares(self) -> bool:
        """Whether the energy exposes residuals."""
        return isinstance(self.energy, LeastSquaresEnergy)

    def _records(self, x: Tensor) -> bool:
        """Whether derivatives at ``x`` must stay differentiable (autograd would record them)."""
        return torch.is_grad_enabled() and (x.requires_grad or not self.detached)

    def _vectorised(self, x: Tensor, kind: str = "hessian") -> bool:
        """Whether dense derivatives at ``x`` take one forward-mode pass (:func:`_forward_columns`).

        Always when autograd records, and on a GPU, where the loop of n reverse passes is n
        rounds of small kernel launches: on an H200, one vectorised pass made the implicit
        adjoint's solves 4–7× faster, at 1.6–8× the memory (B = 1024, n = 30, float64). That pass
        holds the intermediates of all n tangents at once; there is no fallback to the loop for
        large n. On a CPU by size (:data:`CPU_FORWARD_MODE_MIN_N`; ``kind`` is ``"hessian"`` or
        ``"jacobian"``): forward mode for small batches of problems with many variables, the loop
        otherwise.
        """
        if self._records(x) or x.device.type != "cpu":
            return True
        n = x.shape[1]
        return n >= CPU_FORWARD_MODE_MIN_N and x.shape[0] * n <= CPU_FORWARD_MODE_MAX_BN[kind]

    def _unflatten(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def value(self, x: Tensor) -> Tensor:
        """Energies (B,) at flat ``x`` (B, n)."""
        out = functional_call(self.energy, self.params, (self._unflatten(x), self.inputs))
        if not isinstance(out, Tensor) or out.shape != (x.shape[0],):
            raise ShapeError(
                f"Expected `{type(self.energy).__name__}.forward` to return energies of shape "
                f"({x.shape[0]},) for x of shape {tuple(self._unflatten(x).shape)}, "
                f"got {describe(out)}."
            )
        return out

    def _summed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        values = self.value(x)
        return values.sum(), values

    def value_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Energies (B,) and gradients ∇ₓE (B, n)."""
        grad, (_, values) = grad_and_value(self._summed, has_aux=True)(x)
        return values, grad

    def gradient(self, x: Tensor) -> Tensor:
        """Gradients ∇ₓE (B, n)."""
        return self.value_and_grad(x)[1]

    def linearize(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        """A batched Hessian-vector product v ↦ H(x) v (B, n) → (B, n) that reuses one graph.

        The gradient's graph is built once; each product is one reverse pass through it with the
        batched tangent v (reverse-over-reverse, which on CPU costs less than forward mode).
        Differentiable when gradients are enabled (unrolled differentiation).
        """
        track = torch.is_grad_enabled()
        with torch.enable_grad():
            z = x if (track and x.requires_grad) else x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.value(z).sum(), z, create_graph=True)

        def product(v: Tensor) -> Tensor:
            with torch.enable_grad():
                (hv,) = torch.autograd.grad(grad, z, v, retain_graph=True, create_graph=track)
            return hv

        return product

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        """One Hessian-vector product H_b v_b (B, n) for the whole batch."""
        return self.linearize(x)(v)

    def hessian(self, x: Tensor) -> Tensor:
        """Dense Hessians (B, n, n): n Hessian-vector products with batched one-hot tangents."""
        return self.value_grad_hessian(x)[2]

    def value_grad_hessian(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,), gradients (B, n) and dense Hessians (B, n, n).

        Column i of every sample's Hessian comes from one reverse pass with the tangent e_i
        broadcast over the batch (the B problems are independent), so the cost is n products for
        the whole batch, never B·n. When autograd records (gradients enabled and ``x`` or the live
        parameters/inputs need them) it is differentiable and uses forward over reverse instead
        (:meth:`_forward_hessian`), as it does on a GPU (:meth:`_vectorised`).
        """
        if self._vectorised(x):
            return self._forward_hessian(x)
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            values = self.value(z)
            (grad,) = torch.autograd.grad(values.sum(), z, create_graph=True)
            eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
            columns = [torch.autograd.grad(grad, z, eye[i].expand_as(grad), retain_graph=True)[0]
                       for i in range(x.shape[1])]
        return values.detach(), grad.detach(), torch.stack(columns, dim=-1)

    def _forward_hessian(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,), gradients (B, n) and Hessians (B, n, n), forward over reverse.

        The differentiable path of :meth:`value_grad_hessian`; see :func:`_forward_columns`.
        """

        def gradient(z: Tensor) -> Tensor:
            return torch.func.grad(lambda y: self.value(y).sum())(z)

        grad, hess = _forward_columns(gradient, x)
        return self.value(x), grad, hess

    def call(self, method: str, *args: Any) -> Any:
        """``energy.<method>(*args)`` with this problem's (detached, cast) parameters.

        For energy methods beyond ``forward`` that a solver needs (``residuals``, the robust
        kernel's ``rho``/``weights``, a banded energy's ``irls_system``); ``args`` usually end
        with ``self.inputs``.
        """
        view = _MethodView(self.energy, method)
        params = {f"energy.{k}": v for k, v in self.params.items()}
        return functional_call(view, params, args)

    def residuals(self, x: Tensor) -> Tensor:
        """Residuals (B, m) of a :class:`LeastSquaresEnergy`."""
        return self.call("residuals", self._unflatten(x), self.inputs)

    def jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Residuals (B, m) and their Jacobians (B, m, n), batched over the B problems.

        Without gradients: with m ≥ n, n Jacobian-vector products (each a reverse pass through
        the residuals' backward graph with a one-hot tangent broadcast over the batch), otherwise
        m vector-Jacobian products. When autograd records (gradients enabled and ``x`` or the live
        parameters/inputs need them) it is differentiable and always takes n forward-mode
        products in one vectorised pass (:meth:`_forward_jacobian`), as it does on a GPU
        (:meth:`_vectorised`). An energy that implements
        :meth:`~LeastSquaresEnergy.residuals_and_jacobian` is asked for it instead.
        """
        if self.has_jacobian:
            return self._closed_form_jacobian(x)
        if self._vectorised(x, "jacobian"):
            return self._forward_jacobian(x)
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            r = self.residuals(z)
            n, m = x.shape[1], r.shape[1]
            if m >= n:
                dummy = torch.zeros_like(r, requires_grad=True)
                (pullback,) = torch.autograd.grad(r, z, dummy, create_graph=True)
                eye = torch.eye(n, dtype=x.dtype, device=x.device)
                parts = [torch.autograd.grad(pullback, dummy, eye[i].expand_as(pullback),
                                             retain_graph=True)[0] for i in range(n)]
                jac = torch.stack(parts, dim=-1)
            else:
                eye = torch.eye(m, dtype=x.dtype, device=x.device)
                parts = [torch.autograd.grad(r, z, eye[i].expand_as(r), retain_graph=True)[0]
                         for i in range(m)]
                jac = torch.stack(parts, dim=1)
        return r.detach(), jac.detach()

    @property
    def has_jacobian(self) -> bool:
        """Whether the energy gives its residual Jacobian in closed form."""
        return isinstance(self.energy, LeastSquaresEnergy) and self.energy.has_jacobian

    def _closed_form_jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The energy's own :meth:`~LeastSquaresEnergy.residuals_and_jacobian`, flattened."""
        with torch.set_grad_enabled(self._records(x)):
            r, jac = self.call("residuals_and_jacobian", self._unflatten(x), self.inputs)
        expected = (x.shape[0], r.shape[-1], x.shape[1])
        if tuple(r.shape) != expected[:2] or tuple(jac.shape) != expected:
            raise ShapeError(
                f"Expected `{type(self.energy).__name__}.residuals_and_jacobian` to return "
                f"residuals of shape {expected[:2]} and a Jacobian of shape {expected}, got "
                f"{describe(r)} and {describe(jac)}."
            )
        return r, jac

    def _forward_jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Residuals (B, m) and Jacobians (B, m, n) by forward mode, differentiably.

        The differentiable path of :meth:`jacobian`; see :func:`_forward_columns`.
        """
        return _forward_columns(self.residuals, x)

    def gauss_newton(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,), gradients (B, n) and Gauss–Newton matrices JᵀWJ (B, n, n).

        W = ρ'(r²) are the robust kernel's IRLS weights, so the gradient Jᵀ(W r) is exact and
        the matrix drops only the second-order residual and kernel-curvature terms. An energy
        that implements :meth:`~LeastSquaresEnergy.gauss_newton_system` is asked for it;
        otherwise the system is formed from :meth:`jacobian`.
        """
        if self.has_gauss_newton_system:
            return self._closed_form_system(x)
        return self.call("system_from_jacobian", *self.jacobian(x))

    @property
    def has_gauss_newton_system(self) -> bool:
        """Whether the energy gives its Gauss–Newton system in closed form."""
        return (isinstance(self.energy, LeastSquaresEnergy)
                and self.energy.has_gauss_newton_system)

    def _closed_form_system(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The energy's own :meth:`~LeastSquaresEnergy.gauss_newton_system`, checked."""
        with torch.set_grad_enabled(self._records(x)):
            value, grad, hess = self.call("gauss_newton_system", self._unflatten(x), self.inputs)
        b, n = x.shape
        if (tuple(value.shape) != (b,) or tuple(grad.shape) != (b, n)
                or tuple(hess.shape) != (b, n, n)):
            raise ShapeError(
                f"Expected `{type(self.energy).__name__}.gauss_newton_system` to return "
                f"energies of shape ({b},), gradients of shape ({b}, {n}) and matrices of shape "
                f"({b}, {n}, {n}), got {describe(value)}, {describe(grad)} and {describe(hess)}."
            )
        return value, grad, hess


def _forward_columns(fn: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """``fn(x)`` (B, m) and its per-sample Jacobian (B, m, n) by forward mode, differentiably.

    One ``vmap`` over the n one-hot tangents (broadcast over the B independent problems) of
    ``jvp``. This is the path for recorded solver steps (unrolled or truncated
    differentiation): recording the reverse-over-reverse loop instead builds n double-backward
    graphs per step, which made the unrolled pose solve 80× slower (4 frames, 30 LM steps:
    43.7 s against 0.55 s forward, identical gradients). When nothing is recorded it is taken
    on a GPU, and on a CPU for small batches of many variables (:meth:`Problem._vectorised`).
    ``fn`` must support forward-mode AD and ``vmap``, as every energy must for the implicit
    adjoint.
    """
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)

    def column(tangent: Tensor) -> tuple[Tensor, Tensor]:
        out = torch.func.jvp(fn, (x,), (tangent.expand_as(x),))
        return out[0], out[1]

    # The value does not depend on the tangent, so vmap returns it once (out_dims None).
    out_dims: Any = (None, 0)
    value, columns = torch.func.vmap(column, out_dims=out_dims)(eye)
    return value, columns.permute(1, 2, 0)


class _MethodView(nn.Module):
    """Lets ``functional_call`` run a method other than ``forward`` of an energy."""

    def __init__(self, energy: Energy, method: str) -> None:
        super().__init__()
        self.energy = energy
        self.method = method

    def forward(self, *args: Any) -> Tensor:
        return getattr(self.energy, self.method)(*args)


def _map_per_sample(problem: Problem, batch: int, fn: Callable[[Tensor], Tensor]) -> Problem:
    """A shallow copy of ``problem`` with ``fn`` applied to every per-sample input tensor.

    Per-sample tensors are those whose leading dimension is ``batch`` (the inputs' contract);
    the others, and the energy's parameters, are shared as they are.
    """
    mapped = copy.copy(problem)

    def per_sample(t: Tensor) -> Tensor:
        return fn(t) if t.dim() > 0 and t.shape[0] == batch else t

    mapped.inputs = tree_map(per_sample, problem.inputs)
    return mapped


def repeat_problem(problem: Problem, times: int, batch: int) -> Problem:
    """The same problem with every per-sample input tensor tiled ``times`` along the batch.

    Tensors whose leading dimension is not ``batch`` are shared, not tiled.
    """
    return _map_per_sample(problem, batch, lambda t: t.repeat(times, *([1] * (t.dim() - 1))))


def select_problem(problem: Problem, index: Tensor, batch: int) -> Problem:
    """The sub-problem of the samples at ``index`` (A,) of a batch of ``batch`` problems."""
    return _map_per_sample(problem, batch, lambda t: t[index])
