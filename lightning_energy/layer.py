"""The differentiable argmin: :class:`EnergyLayer` and its functional twin :func:`argmin`."""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from lightning_energy._tree import tree_leaves, tree_map
from lightning_energy.adjoints.base import Adjoint
from lightning_energy.adjoints.implicit import ImplicitAdjoint
from lightning_energy.energies.base import Energy, LeastSquaresEnergy
from lightning_energy.errors import IncompatibleSolverError, ShapeError, SolverError, describe
from lightning_energy.solvers.base import Solver
from lightning_energy.solvers.precision import full_precision, no_autocast
from lightning_energy.solvers.solution import Solution

_POLICIES = ("mask", "warn", "raise")
MASKED_WARNING_INTERVAL_S = 300.0
"""Seconds between two warnings of one layer about masked samples (the first comes at once)."""


def check_compatible(energy: Energy, solver: Solver, adjoint: Adjoint) -> None:
    """Raise :class:`IncompatibleSolverError` for an energy/solver/adjoint mismatch."""
    if not isinstance(energy, Energy):
        raise IncompatibleSolverError(
            f"Expected `energy` to be a lightning_energy.Energy, got {type(energy).__name__}."
        )
    if solver.requires_least_squares and not isinstance(energy, LeastSquaresEnergy):
        raise IncompatibleSolverError(
            f"{type(solver).__name__} needs a LeastSquaresEnergy (residuals), got "
            f"{type(energy).__name__}; use Newton, NewtonCG or GradientDescent instead."
        )
    solver.check(energy)
    adjoint.check(energy, solver)


def check_inputs(inputs: Any) -> int:
    """Validate ``inputs`` and return the batch size B from its tensors."""
    leaves = tree_leaves(inputs)
    if not leaves:
        raise ShapeError("Expected `inputs` to hold at least one tensor of shape (B, ...).")
    for name, t in zip(leaf_names(inputs), leaves, strict=True):
        if not (t.is_floating_point() or t.dtype == torch.bool):
            raise ShapeError(
                f"Expected floating-point (or bool mask) tensors in `inputs`, got `{name}` "
                f"of {describe(t)}; cast it with .float()."
            )
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ShapeError(f"Expected finite values in `inputs`, `{name}` of "
                             f"{describe(t)} holds NaN or inf; mask missing data instead.")
    batch = int(leaves[0].shape[0]) if leaves[0].dim() > 0 else 1
    if batch == 0:
        raise ShapeError(f"Expected at least one sample in `inputs`, got an empty batch: "
                         f"`{leaf_names(inputs)[0]}` of {describe(leaves[0])}.")
    return batch


def leaf_names(tree: Any, prefix: str = "inputs") -> list[str]:
    """Names of the tensor leaves of ``tree`` for messages, in :func:`tree_leaves` order.

    ``inputs`` for a tensor, ``inputs[1]`` in a tuple, ``inputs['obs']`` in a dict,
    ``inputs.obs`` in a dataclass or named tuple.
    """
    if isinstance(tree, Tensor):
        return [prefix]
    if isinstance(tree, dict):
        items = [(f"{prefix}[{key!r}]", value) for key, value in tree.items()]
    elif isinstance(tree, tuple) and hasattr(tree, "_fields"):
        items = [(f"{prefix}.{key}", value) for key, value in zip(tree._fields, tree, strict=True)]
    elif isinstance(tree, list | tuple):
        items = [(f"{prefix}[{i}]", value) for i, value in enumerate(tree)]
    elif dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        items = [(f"{prefix}.{f.name}", getattr(tree, f.name)) for f in dataclasses.fields(tree)]
    else:
        return []
    return [name for key, value in items for name in leaf_names(value, key)]


def argmin(
    energy: Energy,
    inputs: Any,
    *,
    solver: Solver,
    adjoint: Adjoint | None = None,
    x0: Tensor | None = None,
    nonconverged: str = "mask",
) -> Solution:
    """Differentiable ``argmin_x energy(x, inputs)``; the functional twin of :class:`EnergyLayer`.

    Args:
        energy: The energy.
        inputs: Per-sample data (a tensor, or tuple/list/dict/dataclass of tensors, leading dim B).
        solver: The inner solver.
        adjoint: The backward rule (default ``ImplicitAdjoint()``).
        x0: Starting points (B, *shape); default ``energy.initial_solution(inputs)``.
        nonconverged: ``"mask"``, ``"warn"`` or ``"raise"`` (see :class:`EnergyLayer`; each call
            is a new layer, so its warning about masked samples is not rate-limited across calls:
            keep an ``EnergyLayer`` in a training loop).

    Returns:
        A :class:`Solution` with differentiable ``x`` of shape (B, *shape).

    Example:
        >>> import torch, lightning_energy as le
        >>> c = torch.randn(4, 2, requires_grad=True)
        >>> sol = le.argmin(le.QuadraticEnergy(2), c, solver=le.Newton(tol=1e-9, dtype="float64"))
        >>> sol.x.shape, bool(sol.converged.all())
        (torch.Size([4, 2]), True)
        >>> sol.x.sum().backward()  # reaches c and the energy's parameters
        >>> c.grad.shape
        torch.Size([4, 2])
    """
    return EnergyLayer(energy, solver, adjoint, nonconverged)(inputs, x0)


class EnergyLayer(nn.Module):
    """``x* = argmin_x E(x; θ, inputs)`` as a differentiable ``nn.Module`` (no Lightning needed).

    Args:
        energy: The energy; its parameters are this layer's parameters.
        solver: The inner solver (runs without autograd except under ``UnrolledAdjoint``).
        adjoint: The backward rule (default ``ImplicitAdjoint()``, damping 1e-2, exact Hessian).
        nonconverged: What to do with samples whose solve did not converge: ``"mask"`` gives them
            zero gradient and counts them in ``solution.diagnostics["masked"]``; ``"warn"`` keeps
            their gradient and emits a warning; ``"raise"`` raises :class:`SolverError`.
        warn_masked_share: Under ``"mask"``, warn when more than this share of a batch is masked
            (non-finite solves included), at most once every
            :data:`MASKED_WARNING_INTERVAL_S` seconds per layer; 1 never warns. The share is
            always logged by :class:`~lightning_energy.callbacks.SolverDiagnostics`.
        chunk_size: Solve (and differentiate) the batch in chunks of at most this many samples.
            On CPU the cost per sample grows once a batch's working set leaves the cache
            (B ≳ 1024 in float64 for n ≈ 30), and chunks of 256–512 keep it there. Every input
            tensor whose leading dimension is B is split; others are shared. The backward
            diagnostics then describe the last chunk.

    Example:
        >>> import torch, lightning_energy as le
        >>> layer = le.EnergyLayer(le.QuadraticEnergy(3), le.Newton(tol=1e-9, dtype="float64"))
        >>> sol = layer(torch.randn(8, 3, requires_grad=True))
        >>> sol.x.sum().backward()
        >>> sol.x.shape, sol.converged.shape
        (torch.Size([8, 3]), torch.Size([8]))
    """

    def __init__(
        self,
        energy: Energy,
        solver: Solver,
        adjoint: Adjoint | None = None,
        nonconverged: str = "mask",
        chunk_size: int | None = None,
        warn_masked_share: float = 0.1,
    ) -> None:
        super().__init__()
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"Expected `chunk_size` >= 1 or None, got {chunk_size}.")
        if not 0.0 <= warn_masked_share <= 1.0:
            raise ValueError(f"Expected `warn_masked_share` in [0, 1], got {warn_masked_share}.")
        self.chunk_size, self.warn_masked_share = chunk_size, warn_masked_share
        self._warned_at = -float("inf")
        adjoint = ImplicitAdjoint() if adjoint is None else adjoint
        if nonconverged not in _POLICIES:
            raise ValueError(
                f"Expected `nonconverged` to be one of {_POLICIES}, got {nonconverged!r}."
            )
        check_compatible(energy, solver, adjoint)
        self.energy, self.solver, self.adjoint = energy, solver, adjoint
        self.nonconverged = nonconverged

    def forward(self, inputs: Any, x0: Tensor | None = None) -> Solution:
        """Solve the batch of problems.

        Args:
            inputs: Per-sample data, tensors with leading dimension B.
            x0: Starting points (B, *shape); default ``energy.initial_solution(inputs)``.

        Returns:
            A :class:`Solution`; ``x`` (B, *shape) is differentiable w.r.t. the energy
            parameters and every floating input tensor that requires grad, in the dtype of
            ``x0`` (float32 for a half-precision ``x0``). The solve, and ``ImplicitAdjoint``'s
            backward pass, run with autocast off (:mod:`lightning_energy.solvers.precision`).
        """
        if torch.is_inference_mode_enabled():
            # The inner solve needs autograd for gradients and Hessians, which inference mode
            # forbids; leave it, and copy inference tensors so autograd may use them.
            with torch.inference_mode(False), torch.no_grad():
                inputs = tree_map(torch.clone, inputs)
                return self.forward(inputs, None if x0 is None else x0.clone())
        batch = check_inputs(inputs)
        if x0 is None:
            x0 = self.energy.initial_solution(inputs)
            self._check_x0(x0, batch, inputs)
        else:
            self._check_x0(x0, batch)
        out_dtype = full_precision(x0.dtype)
        dtype = self.solver.dtype or out_dtype
        flat = x0.detach().reshape(batch, -1).to(dtype)
        shape = tuple(x0.shape[1:])
        with no_autocast(flat.device):
            chunks = [
                self.adjoint.solve(self.energy, self.solver, _slice(inputs, start, stop, batch),
                                   flat[start:stop], shape, self.nonconverged == "mask")
                for start, stop in _chunks(batch, self.chunk_size)
            ]
        solution = chunks[0] if len(chunks) == 1 else _concatenate(chunks)
        solution.x = solution.x.to(out_dtype)
        self._apply_policy(solution)
        return solution

    def _check_x0(self, x0: Tensor, batch: int, inputs: Any = None) -> None:
        """Check the starting points: the user's ``x0``, or (with ``inputs``) the energy's."""
        name, cause = "x0", ""
        if inputs is not None:
            # The user passed no x0: a start of the wrong shape comes from wrong-shaped inputs.
            name = f"{type(self.energy).__name__}.initial_solution(inputs)"
            shapes = ", ".join(describe(t) for t in tree_leaves(inputs))
            cause = f"; check the shapes of `inputs`: {shapes}"
        shape = self.energy.solution_shape
        want = "..." if shape is None else ", ".join(str(s) for s in shape)
        ok = isinstance(x0, Tensor) and x0.dim() >= 2 and x0.shape[0] == batch
        if not ok or (shape is not None and tuple(x0.shape[1:]) != tuple(shape)):
            raise ShapeError(f"Expected `{name}` of shape ({batch}, {want}) matching the batch "
                             f"of `inputs`, got {describe(x0)}{cause}.")
        if not x0.is_floating_point():
            raise ShapeError(f"Expected floating-point `{name}`, got {describe(x0)}.")

    def _apply_policy(self, solution: Solution) -> None:
        bad = ~solution.converged
        masked = bad if self.nonconverged == "mask" else torch.zeros_like(bad)
        # Counted over the problems solved here: a task may pick fewer rows (one of M components).
        solution.diagnostics["masked"], solution.diagnostics["solves"] = masked.sum(), bad.numel()
        if self.nonconverged == "mask":
            self._warn_if_masked(solution, bad)
            return
        if not bool(bad.any()):
            return
        message = (f"{int(bad.sum())} of {bad.numel()} solves did not converge "
                   f"({solution.status_counts()}); raise max_steps or tol, or use "
                   "nonconverged='mask'.")
        if self.nonconverged == "raise":
            raise SolverError(message)
        warnings.warn(message, RuntimeWarning, stacklevel=5)  # the caller of layer(...)

    def _warn_if_masked(self, solution: Solution, masked: Tensor) -> None:
        now = time.monotonic()
        if now - self._warned_at < MASKED_WARNING_INTERVAL_S:
            return  # checked first: no host sync while the warning is muted
        share = float(masked.float().mean())
        if share <= self.warn_masked_share:
            return
        self._warned_at = now
        counts = ", ".join(f"{n} {status}" for status, n in solution.status_counts().items()
                           if n and status != "converged")
        warnings.warn(
            f"{int(masked.sum())} of {masked.numel()} samples ({share:.0%}) get no gradient: "
            f"their solve did not converge ({counts}). Raise the solver's "
            "`max_steps`, loosen its `tol` or solve in float64 (`dtype='float64'`); NaN starts or "
            "energies end NONFINITE. Logged as {stage}/solver/masked_share; warned at most every "
            f"{MASKED_WARNING_INTERVAL_S:.0f} s above "
            f"`warn_masked_share`={self.warn_masked_share}.",
            RuntimeWarning, stacklevel=6)  # the caller of layer(...)


def _chunks(batch: int, size: int | None) -> list[tuple[int, int]]:
    size = batch if size is None else size
    return [(start, min(start + size, batch)) for start in range(0, batch, size)]


def _slice(inputs: Any, start: int, stop: int, batch: int) -> Any:
    if (start, stop) == (0, batch):
        return inputs
    return tree_map(lambda t: t[start:stop] if t.dim() and t.shape[0] == batch else t, inputs)


def _concatenate(chunks: list[Solution]) -> Solution:
    """One solution from per-chunk solutions; ``x`` keeps every chunk's gradient rule."""
    diagnostics = chunks[-1].diagnostics
    for chunk in chunks:
        chunk.diagnostics = diagnostics  # the adjoints write their backward statistics here
    fields = ("x", "value", "status", "converged", "num_steps", "grad_norm", "damping")
    merged: dict[str, Any] = {f: torch.cat([getattr(c, f) for c in chunks]) for f in fields}
    return Solution(**merged, diagnostics=diagnostics)
