"""The solver interface (``init`` / ``step`` / ``terminate``) and the batched solve loop.

Every sample of a batch stops on its own: once a sample is done (converged, non-finite or
stalled) its state is frozen while the others go on, and later steps are computed for the others
only. The loop finds the running samples once per step, the only host synchronisation in it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lightning_energy.solvers.problem import Problem, select_problem
from lightning_energy.solvers.solution import Solution, SolverStatus

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class SolverState:
    """Per-sample state carried between steps; every field has leading dimension B.

    Attributes:
        x: Current iterates (B, n).
        value: Energies at ``x`` (B,).
        grad: Gradients at ``x`` (B, n).
        damping: Trust-region damping μ (B,) (for gradient descent, the inverse step size).
        growth: Factor by which μ grows on the next rejected step (B,).
        num_steps: Steps taken (B,).
        curvature: Cached curvature at ``x`` (dense solvers: (B, n, n)); ``None`` otherwise.
        indefinite: Whether the last step's damped system was not positive definite (B,);
            ``None`` for solvers without one.
    """

    x: Tensor
    value: Tensor
    grad: Tensor
    damping: Tensor
    growth: Tensor
    num_steps: Tensor
    curvature: Tensor | None = None
    indefinite: Tensor | None = None

    @property
    def grad_norm(self) -> Tensor:
        """‖∇ₓE‖₂ per sample (B,)."""
        return torch.linalg.vector_norm(self.grad, dim=-1)

    def where(self, keep: Tensor, other: SolverState) -> SolverState:
        """Per sample, ``other`` where ``keep`` is True, else ``self``."""
        fields = {}
        for f in dataclasses.fields(self):
            mine, theirs = _both_or_neither(f.name, self, other)
            if mine is None or theirs is None:
                fields[f.name] = mine
                continue
            mask = keep.reshape(-1, *([1] * (mine.dim() - 1)))
            fields[f.name] = torch.where(mask, theirs, mine)
        return SolverState(**fields)

    def take(self, index: Tensor) -> SolverState:
        """The samples at ``index`` (an integer tensor (A,)) as a state of batch A."""
        fields: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            fields[f.name] = None if value is None else value[index]
        return SolverState(**fields)

    def put(self, index: Tensor, part: SolverState) -> SolverState:
        """A copy of this state with the samples at ``index`` replaced by ``part`` (batch A).

        Out of place (``index_copy``), so it stays differentiable when the solve is recorded.
        """
        fields = {}
        for f in dataclasses.fields(self):
            mine, theirs = _both_or_neither(f.name, self, part)
            fields[f.name] = mine if mine is None or theirs is None else (
                mine.index_copy(0, index, theirs.to(mine.dtype)))
        return SolverState(**fields)


def _both_or_neither(name: str, mine: SolverState, theirs: SolverState) -> tuple[Any, Any]:
    """The field ``name`` of two states, which must be set in both or in neither.

    Merging a field set on one side only would silently keep a stale value (an old curvature
    for a new x), so it raises.
    """
    a, b = getattr(mine, name), getattr(theirs, name)
    if (a is None) != (b is None):
        raise ValueError(f"SolverState: field `{name}` is None in one state only; a solver "
                         f"must fill the same fields in every state it returns.")
    return a, b


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """Accept ``torch.float64`` or ``"float64"`` (recipes spell dtypes as strings).

    Half precision is refused: a solve never runs in it (:mod:`lightning_energy.solvers.precision`).
    """
    if dtype is None or dtype in _DTYPES.values():
        return dtype  # type: ignore[return-value]
    if dtype not in _DTYPES:
        raise ValueError(f"Expected `dtype` to be one of {sorted(_DTYPES)} or None, got {dtype!r}"
                         " (a solve never runs in half precision).")
    return _DTYPES[dtype]


class Solver(ABC):
    """Base class of batched inner solvers.

    Args:
        max_steps: Step budget per sample.
        tol: A sample has converged when ‖∇ₓE‖₂ ≤ ``tol``.
        dtype: Solve in this dtype (e.g. ``"float64"``) whatever the caller's precision;
            ``None`` keeps the dtype of ``x0`` (float32 for a half-precision ``x0``: a solve
            never runs in half precision, see :mod:`lightning_energy.solvers.precision`).
        max_damping: A sample whose damping exceeds this could not make progress: ``STALLED``.

    Example:
        A solver also runs on its own, on an energy bound to its inputs (gradients not tracked):

        >>> import torch, lightning_energy as le
        >>> solver: le.Solver = le.Newton(tol=1e-10, dtype="float64")
        >>> c = torch.zeros(3, 2, dtype=torch.float64)
        >>> sol = solver.solve(le.solvers.Problem(le.QuadraticEnergy(2).double(), c, (2,)), c)
        >>> sol.x.shape, sol.converged.tolist()
        (torch.Size([3, 2]), [True, True, True])
    """

    requires_least_squares: bool = False
    """Whether the solver needs a :class:`~lightning_energy.LeastSquaresEnergy`."""
    curvature_kind: str | None = None
    """Kind of dense curvature the solver keeps in its state (``"exact"``, ``"gauss_newton"``)."""
    compact: bool = True
    """Whether steps skip the samples already done (see :meth:`run`). Set it to False on an
    instance whose energy's inputs hold a shared tensor with leading dimension B (the inputs'
    contract says such tensors are per-sample)."""

    def __init__(
        self,
        max_steps: int = 50,
        tol: float = 1e-6,
        dtype: torch.dtype | str | None = None,
        max_damping: float = 1e16,
    ) -> None:
        if max_steps < 0:
            raise ValueError(f"Expected `max_steps` >= 0, got {max_steps}.")
        if not tol >= 0:
            raise ValueError(f"Expected `tol` >= 0, got {tol}.")
        self.max_steps = max_steps
        self.tol = tol
        self.dtype = resolve_dtype(dtype)
        self.max_damping = max_damping

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_steps={self.max_steps}, tol={self.tol})"

    def check(self, energy: Any) -> None:  # noqa: B027
        """Raise ``IncompatibleSolverError`` if this solver cannot minimise ``energy``."""

    @abstractmethod
    def init(self, problem: Problem, x: Tensor) -> SolverState:
        """The state at the starting point ``x`` (B, n)."""

    @abstractmethod
    def step(self, problem: Problem, state: SolverState) -> SolverState:
        """One step for every sample (accepted or rejected per sample)."""

    def update(self, problem: Problem, x: Tensor, damping: Tensor) -> Tensor:
        """The solver's update map x ↦ x⁺ with a given damping, always accepted (B, n).

        Differentiable; used by :class:`~lightning_energy.TruncatedAdjoint`.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no update map.")

    def terminate(self, state: SolverState) -> Tensor:
        """Per-sample done mask (B,): converged, non-finite or stalled."""
        finite = torch.isfinite(state.value) & torch.isfinite(state.grad).all(-1)
        return (state.grad_norm <= self.tol) | ~finite | (state.damping > self.max_damping)

    def status(self, state: SolverState) -> Tensor:
        """Final :class:`SolverStatus` codes (B,)."""
        finite = torch.isfinite(state.value) & torch.isfinite(state.grad).all(-1)
        status = torch.full_like(state.num_steps, int(SolverStatus.MAX_STEPS))
        status = torch.where(state.damping > self.max_damping, int(SolverStatus.STALLED), status)
        if state.indefinite is not None:
            status = torch.where(state.indefinite, int(SolverStatus.NOT_POSITIVE_DEFINITE), status)
        status = torch.where(state.grad_norm <= self.tol, int(SolverStatus.CONVERGED), status)
        return torch.where(finite, status, int(SolverStatus.NONFINITE))

    def run(self, problem: Problem, x0: Tensor, max_steps: int | None = None) -> SolverState:
        """Iterate from flat ``x0`` (B, n) until every sample is done or the budget runs out.

        Once some samples are done, each step is taken on the others only (with
        :attr:`compact`): the sub-problem holds their rows of every per-sample input, so the
        cost of a step follows the number of samples still running, not B.
        """
        state = self.init(problem, x0)
        batch = x0.shape[0]
        for _ in range(self.max_steps if max_steps is None else max_steps):
            done = self.terminate(state)
            active = torch.nonzero(~done).squeeze(-1)  # the loop's one host synchronisation
            if active.numel() == 0:
                break
            if not self.compact or active.numel() == batch:
                proposal = self.step(problem, state)
                proposal.num_steps = state.num_steps + 1
                state = state.where(~done, proposal)
                continue
            part = state.take(active)
            proposal = self.step(select_problem(problem, active, batch), part)
            proposal.num_steps = part.num_steps + 1
            state = state.put(active, proposal)
        return state

    def solve(self, problem: Problem, x0: Tensor) -> Solution:
        """Minimise ``problem`` from flat ``x0`` (B, n); gradients are not tracked.

        Returns:
            A :class:`Solution` whose ``x`` has shape (B, *problem.shape).
        """
        with torch.no_grad():
            state = self.run(problem, x0.detach())
        return self.to_solution(problem, state)

    def to_solution(self, problem: Problem, state: SolverState) -> Solution:
        """Package a final state as a :class:`Solution`."""
        status = self.status(state)
        return Solution(
            x=state.x.reshape(state.x.shape[0], *problem.shape),
            value=state.value,
            status=status,
            converged=status == int(SolverStatus.CONVERGED),
            num_steps=state.num_steps,
            grad_norm=state.grad_norm,
            damping=state.damping,
            curvature=state.curvature,
            curvature_kind=self.curvature_kind if state.curvature is not None else None,
        )
