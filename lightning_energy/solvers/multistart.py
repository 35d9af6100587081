"""Several starts per sample, keeping the lowest-energy solution."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_energy.solvers.base import Solver, SolverState
from lightning_energy.solvers.problem import Problem, repeat_problem


class MultiStart(Solver):
    """Run ``solver`` from S starting points per sample and keep the lowest final energy.

    All B·S problems are solved as one batch. Among the starts of a sample, finite energies win
    over non-finite ones, then the lowest energy wins.

    Args:
        solver: The inner solver.
        starts: Either the number of starts S (the given ``x0`` plus S − 1 Gaussian
            perturbations of standard deviation ``scale``, seeded by ``seed``), or a tensor of
            offsets added to ``x0``, shape (S, *shape) — e.g. a grid of yaw angles; recipes give
            it as a list of lists of floats.
        scale: Standard deviation of the random perturbations.
        seed: Seed of the random perturbations (the same starts every call).

    Example:
        >>> import torch, lightning_energy as le
        >>> solver = le.MultiStart(le.Newton(), starts=torch.tensor([[0.0], [3.0], [-3.0]]))
        >>> solver.num_starts
        3
    """

    def __init__(
        self,
        solver: Solver,
        starts: int | Tensor | list[list[float]] = 4,
        scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(max_steps=solver.max_steps, tol=solver.tol, dtype=solver.dtype,
                         max_damping=solver.max_damping)
        if isinstance(starts, int) and starts < 1:
            raise ValueError(f"Expected `starts` >= 1, got {starts}.")
        if isinstance(starts, list):
            starts = torch.tensor(starts, dtype=torch.float64)
        self.solver, self.starts, self.scale, self.seed = solver, starts, scale, seed
        self.requires_least_squares = solver.requires_least_squares
        self.curvature_kind = solver.curvature_kind

    @property  # type: ignore[override]
    def compact(self) -> bool:
        """The inner solver's :attr:`Solver.compact` (its loop is the one that runs)."""
        return self.solver.compact

    @compact.setter
    def compact(self, value: bool) -> None:
        self.solver.compact = value

    @property
    def num_starts(self) -> int:
        """Number of starts S."""
        return self.starts if isinstance(self.starts, int) else int(self.starts.shape[0])

    def init(self, problem: Problem, x: Tensor) -> SolverState:  # noqa: D102
        return self.solver.init(problem, x)

    def step(self, problem: Problem, state: SolverState) -> SolverState:  # noqa: D102
        return self.solver.step(problem, state)

    def update(self, problem: Problem, x: Tensor, damping: Tensor) -> Tensor:  # noqa: D102
        return self.solver.update(problem, x, damping)

    def initial_points(self, x0: Tensor) -> Tensor:
        """Starting points (S, B, n) from flat ``x0`` (B, n)."""
        if isinstance(self.starts, Tensor):
            offsets = self.starts.to(x0).reshape(self.num_starts, 1, -1)
            if offsets.shape[-1] != x0.shape[-1]:
                raise ValueError(
                    f"Expected `starts` of shape (S, {x0.shape[-1]}) after flattening, "
                    f"got {tuple(self.starts.shape)}."
                )
            return x0.unsqueeze(0) + offsets
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn((self.num_starts - 1, *x0.shape), generator=gen, dtype=x0.dtype)
        return torch.cat([x0.unsqueeze(0), x0 + self.scale * noise.to(x0.device)])

    def run(self, problem: Problem, x0: Tensor, max_steps: int | None = None) -> SolverState:
        """Solve every start as one batch of B·S problems and keep each sample's best."""
        batch, n = x0.shape
        points = self.initial_points(x0)
        s = points.shape[0]
        tiled = repeat_problem(problem, s, batch)
        state = self.solver.run(tiled, points.reshape(s * batch, n), max_steps)
        score = torch.where(torch.isfinite(state.value), state.value, torch.inf)
        best = score.reshape(s, batch).argmin(0)
        index = best * batch + torch.arange(batch, device=x0.device)
        return SolverState(
            x=state.x[index], value=state.value[index], grad=state.grad[index],
            damping=state.damping[index], growth=state.growth[index],
            num_steps=state.num_steps[index],
            curvature=None if state.curvature is None else state.curvature[index],
            indefinite=None if state.indefinite is None else state.indefinite[index],
        )

    def status(self, state: SolverState) -> Tensor:  # noqa: D102
        return self.solver.status(state)

    def terminate(self, state: SolverState) -> Tensor:  # noqa: D102
        return self.solver.terminate(state)
