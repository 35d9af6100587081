"""Base classes for energies: :class:`Energy` and :class:`LeastSquaresEnergy`."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

from lightning_energy.energies.robust import RobustKernel


class Energy(nn.Module, ABC):
    """A batch of independent scalar energies ``E_b(x_b; θ, inputs_b)``.

    Subclass it and implement :meth:`forward`. The energy parameters θ are the module's
    ``nn.Parameter`` s; ``inputs`` carries the per-sample data (a tensor, or a tuple, list, dict or
    dataclass of tensors with a leading batch dimension B). Gradients reach every parameter and
    every floating input tensor that requires grad.

    ``forward`` must be compatible with ``torch.func`` (no in-place edits of ``x``, no ``.item()``,
    no data-dependent Python control flow), because solvers and adjoints evaluate it under
    ``vmap``/``jvp``/``grad``. Problems must be independent: ``E_b`` may depend on ``x_b`` only.

    Example:
        >>> import torch
        >>> import lightning_energy as le
        >>> class Mean(le.Energy):
        ...     def forward(self, x, inputs):  # x: (B, 1), inputs: (B, P)
        ...         return 0.5 * ((x - inputs) ** 2).sum(-1)
        ...     def initial_solution(self, inputs):
        ...         return inputs.new_zeros(inputs.shape[0], 1)
        >>> Mean()(torch.zeros(2, 1), torch.ones(2, 3)).shape
        torch.Size([2])
    """

    solution_shape: tuple[int, ...] | None = None
    """Per-sample solution shape when the energy fixes it; the layer checks ``x0`` against it."""

    @abstractmethod
    def forward(self, x: Tensor, inputs: Any) -> Tensor:
        """Evaluate the energies.

        Args:
            x: Solutions, shape (B, n) or (B, *shape).
            inputs: Per-sample data, tensors with leading dimension B.

        Returns:
            Energies, shape (B,).
        """

    def initial_solution(self, inputs: Any) -> Tensor:
        """Starting point of the inner solve, (B, *shape); override it to avoid passing ``x0``."""
        raise NotImplementedError(
            f"{type(self).__name__} has no initial_solution(inputs); pass `x0` of shape (B, ...) "
            "to the layer or implement initial_solution."
        )


class LeastSquaresEnergy(Energy):
    """``E(x) = ½ Σᵢ ρ(rᵢ(x)²)`` for residuals ``r`` of shape (B, m) and a robust kernel ρ.

    Implement :meth:`residuals`. Without a kernel ρ(s) = s (plain least squares). Solvers that need
    this structure (``GaussNewton``, ``LevenbergMarquardt``, the ``"gauss_newton"`` Hessian) use
    the Gauss–Newton system formed from the Jacobian of the residuals and the kernel's weights
    ρ'(r²) (iteratively reweighted least squares); :meth:`residuals_and_jacobian` and
    :meth:`gauss_newton_system` may give the Jacobian or the whole system in closed form.

    Args:
        kernel: Optional robust kernel; its scale may be a learnable energy parameter.

    Example:
        >>> import torch, lightning_energy as le
        >>> class Mean(le.LeastSquaresEnergy):
        ...     def residuals(self, x, inputs):  # x: (B, 1), inputs: (B, P)
        ...         return x - inputs
        >>> points = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
        >>> Mean()(torch.zeros(1, 1, dtype=torch.float64), points)  # ½ (1² + 3²)
        tensor([5.], dtype=torch.float64)
    """

    def __init__(self, kernel: RobustKernel | None = None) -> None:
        super().__init__()
        self.kernel = kernel

    @abstractmethod
    def residuals(self, x: Tensor, inputs: Any) -> Tensor:
        """Residuals, shape (B, m), for solutions ``x`` of shape (B, n) or (B, *shape)."""

    def residuals_and_jacobian(self, x: Tensor, inputs: Any) -> tuple[Tensor, Tensor]:
        """Residuals (B, m) and their Jacobians (B, m, n) in closed form (optional).

        Override when a hand-written Jacobian is cheaper than automatic differentiation (the
        solvers then call it once per Gauss–Newton step instead of n autograd products). Write it
        with differentiable torch operations: under unrolled differentiation it is
        differentiated with respect to ``x`` and the energy parameters. Check it against
        autograd with :func:`lightning_energy.testing.check_jacobian`. ``n`` counts the entries
        of ``x`` (B, *shape) in row-major order.
        """
        raise NotImplementedError

    def gauss_newton_system(self, x: Tensor, inputs: Any) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,), gradients Jᵀ(W r) (B, n) and Gauss–Newton matrices JᵀWJ (B, n, n).

        Optional, beside :meth:`residuals_and_jacobian`: override it when the residuals'
        structure gives JᵀWJ more cheaply than the dense Jacobian (B, m, n) does, e.g. when
        groups of residuals depend on x through a few shared intermediate variables, so J is
        never formed. W = ρ'(r²) are :meth:`weights`. The solvers' Gauss–Newton steps and the
        ``"gauss_newton"`` Hessian of the implicit adjoint then call it once per evaluation.
        Write it with differentiable torch operations (unrolled differentiation differentiates
        it) and check it with :func:`lightning_energy.testing.check_gauss_newton_system`. As in
        :meth:`residuals_and_jacobian`, ``x`` arrives as (B, *shape) and ``n`` counts its
        entries in row-major order. The default forms the system from
        :meth:`residuals_and_jacobian` (``NotImplementedError`` when that is not implemented
        either). A subclass that overrides :meth:`residuals` or :meth:`residuals_and_jacobian`
        below the class that defines this method is solved through its own Jacobian instead
        (:attr:`has_gauss_newton_system`), so the inherited system cannot go stale.
        """
        return self.system_from_jacobian(*self.residuals_and_jacobian(x, inputs))

    def system_from_jacobian(self, residuals: Tensor, jacobian: Tensor
                             ) -> tuple[Tensor, Tensor, Tensor]:
        """Energies (B,), gradients (B, n) and JᵀWJ (B, n, n) from residuals (B, m) and J.

        The gradient Jᵀ(W r) is exact; JᵀWJ drops the residuals' second derivatives and the
        kernel's curvature.
        """
        squared = residuals**2
        value = 0.5 * self.rho(squared).sum(-1)
        w = self.weights(squared)
        grad = torch.einsum("bmn,bm->bn", jacobian, w * residuals)
        hess = torch.einsum("bmi,bm,bmj->bij", jacobian, w, jacobian)
        return value, grad, hess

    closed_form_jacobian: bool = True
    """Set to False on an instance to have the solvers differentiate :meth:`residuals` instead
    of calling :meth:`residuals_and_jacobian` or :meth:`gauss_newton_system` (to compare the
    two, or to rule them out); sequence energies then also use automatic Jacobian blocks and
    curvature products."""

    @property
    def has_jacobian(self) -> bool:
        """Whether :meth:`residuals_and_jacobian` is implemented, enabled and current.

        Current: defined in the class that defines :meth:`residuals` or below it, so a subclass
        that changes the residuals does not inherit a Jacobian of other residuals.
        """
        return self.closed_form_jacobian and _closed_form_current(
            type(self), "residuals_and_jacobian", ("residuals",))

    @property
    def has_gauss_newton_system(self) -> bool:
        """Whether :meth:`gauss_newton_system` is implemented, enabled and current.

        Current: defined in the classes that define :meth:`residuals` and
        :meth:`residuals_and_jacobian` or below them.
        """
        return self.closed_form_jacobian and _closed_form_current(
            type(self), "gauss_newton_system", ("residuals", "residuals_and_jacobian"))

    def forward(self, x: Tensor, inputs: Any) -> Tensor:
        """Energies ``½ Σ ρ(r²)``, shape (B,)."""
        squared = self.residuals(x, inputs) ** 2
        return 0.5 * self.rho(squared).sum(-1)

    def rho(self, squared: Tensor) -> Tensor:
        """The kernel applied to squared residuals (identity without a kernel)."""
        return squared if self.kernel is None else self.kernel(squared)

    def weights(self, squared: Tensor) -> Tensor:
        """IRLS weights ρ'(r²), same shape as ``squared``."""
        if self.kernel is None:
            return torch.ones_like(squared)
        return self.kernel.weight(squared)


def _defining_class(cls: type, name: str) -> type:
    """The class of ``cls``'s method resolution order that defines attribute ``name``."""
    return next(klass for klass in cls.__mro__ if name in vars(klass))


@functools.cache  # asked at every solver evaluation; a class's answer never changes
def _closed_form_current(cls: type, method: str, sources: tuple[str, ...]) -> bool:
    """Whether ``cls`` has its own closed-form ``method``, consistent with its ``sources``.

    True when ``method`` is overridden (not :class:`LeastSquaresEnergy`'s) in a class at least as
    derived as every class that defines one of ``sources``.
    """
    owner = _defining_class(cls, method)
    return owner is not LeastSquaresEnergy and all(
        issubclass(owner, _defining_class(cls, source)) for source in sources)
