"""Convergence statistics of the inner solves of an energy layer."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_energy.metrics.functional import _convergence_compute, _convergence_update


class SolverConvergence(Metric):
    """Fraction of converged solves, mean and max solver steps, mean final gradient norm.

    As input to ``update`` / ``forward`` (typically the fields of a ``Solution``):

        - ``converged``: bool of shape (B,).
        - ``num_steps``: integer step counts of shape (B,).
        - ``grad_norm`` (optional): float gradient norms of shape (B,); batches without it do not
          count towards ``"grad_norm_mean"``.

    States are sums and counts (``dist_reduce_fx="sum"``) plus the step maximum
    (``dist_reduce_fx="max"``), so DDP reduction is exact. ``compute()`` returns float64 scalars
    ``{"converged", "steps_mean", "steps_max", "grad_norm_mean"}``; log them with e.g.
    ``self.log_dict({f"train/solver/{k}": v for k, v in metric.compute().items()})``. The
    functional twin is :func:`lightning_energy.metrics.functional.solver_convergence`.

    Example:
        >>> import torch
        >>> metric = SolverConvergence()
        >>> grad_norm = torch.tensor([0.0, 2.0])
        >>> metric.update(torch.tensor([True, False]), torch.tensor([4, 50]), grad_norm)
        >>> metric.update(torch.tensor([True, True]), torch.tensor([6, 8]))
        >>> {key: round(value.item(), 3) for key, value in metric.compute().items()}
        {'converged': 0.75, 'steps_mean': 17.0, 'steps_max': 50.0, 'grad_norm_mean': 1.0}
    """

    num_converged: Tensor
    total: Tensor
    steps_sum: Tensor
    steps_max: Tensor
    grad_norm_sum: Tensor
    grad_norm_count: Tensor
    full_state_update: bool = False
    is_differentiable: bool = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("num_converged", "total", "steps_sum", "grad_norm_count"):
            self.add_state(name, torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("steps_max", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="max")
        self.add_state(
            "grad_norm_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, converged: Tensor, num_steps: Tensor, grad_norm: Tensor | None = None) -> None:
        """Accumulate a batch of per-sample solver outcomes of shape (B,)."""
        stats = _convergence_update(converged, num_steps, grad_norm)
        num_converged, total, steps_sum, steps_max, grad_norm_sum, grad_norm_count = stats
        self.num_converged += num_converged
        self.total += total
        self.steps_sum += steps_sum
        self.steps_max = torch.maximum(self.steps_max, steps_max)
        self.grad_norm_sum += grad_norm_sum
        self.grad_norm_count += grad_norm_count

    def compute(self) -> dict[str, Tensor]:
        """The four statistics over everything seen, float64 scalars (NaN where nothing seen)."""
        return _convergence_compute(
            self.num_converged,
            self.total,
            self.steps_sum,
            self.steps_max,
            self.grad_norm_sum,
            self.grad_norm_count,
        )
