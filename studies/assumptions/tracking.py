"""Parts 1–3 of the study on tracker fusion (OTB-100, 25 trackers, the recipe's energy).

``python -m studies.assumptions.tracking --out docs/study`` writes ``tracking.json``,
``tracking.png`` and ``tracking.md`` (the runs: :mod:`studies.assumptions.recipe_parts`). The
energy is ``recipes/tracking/otb100.yaml``'s under its cross-validation protocol, as training
starts (base weights from the training AUCs, the feature network as initialised) and as trained
in fold 0 (``--ckpt``, the state ``lightning-energy cv`` tested: ``best.ckpt``); the samples are
training-size windows (T = 32) of that fold's held-out test videos, drawn per seed.

θ (B, K) is a per-window offset of every tracker's log-weight, added on all frames of the
window: the per-sample form of the base log-weights b_k as the energy sees them (the feature
network reads b_k too), and the quantity the network's per-frame log-weights add to. x* is the
recipe's banded IRLS solution refined by Newton to ‖∇ₓE‖ ≤ 1e-10 in float64 on the flattened
window (n = 4T = 128); the loss is each window's mean 1 − GIoU against the ground truth, given
to the toys' functions as the target x* − ∂L/∂x (the same gradient at x*) and, for the
truncated solves of part 3, as itself.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

import lightning_energy as le
from lightning_energy.datamodules.tracking import collate_tracking
from lightning_energy.datasets.tracking_batch import TrackingBatch
from lightning_energy.datasets.tracking_windows import TrackingWindows
from lightning_energy.energies.tracking import TrackFusionInputs
from lightning_energy.solvers import BandedIRLS
from lightning_energy.tasks.tracking import batch_frame, giou_loss
from studies.assumptions import problems, recipe_parts

RECIPE = ("recipes/tracking/otb100.yaml", "recipes/tracking/cv/protocol.yaml")
TIGHT_TOL = 1e-10
"""The re-solves' ‖∇ₓE‖ bound, as on the pose task."""
SIZES = (1e-3, 1e-2, 0.1, 0.3, 1.0)
"""Step sizes ‖Δθ‖ of the log-weight offsets (1.0 scales the window's trust in one tracker by e
when the step falls on one tracker)."""


def test_windows(data: Any, num: int, seed: int) -> TrackingBatch:
    """``num`` windows of the recipe's length from the held-out videos, drawn by ``seed``."""
    data.setup("test")
    windows = TrackingWindows(data.sequences("test"), data.window, data.stride)
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(seed))
    subset = Subset(windows, order[:num].sort().values.tolist())
    return next(iter(DataLoader(subset, batch_size=num, collate_fn=collate_tracking)))


def window_losses(x: Tensor, batch: TrackingBatch) -> Tensor:
    """Each window's mean 1 − GIoU of the fused boxes (B,), for flat states x (B, n)."""
    frame = batch_frame(batch)
    mask = batch.target_valid & batch.frame_valid
    target = batch.target.to(x.dtype)
    boxes = frame.to_boxes(x.reshape(x.shape[0], -1, 4))
    return torch.stack([giou_loss(boxes[i:i + 1], target[i:i + 1], mask[i:i + 1])
                        for i in range(x.shape[0])])


def window_loss_gradient(x: Tensor, batch: TrackingBatch) -> Tensor:
    """∂/∂x of :func:`window_losses`, (B, n)."""
    with torch.enable_grad():
        z = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(window_losses(z, batch).sum(), z)
    return grad.detach()


def truncated_solver(kind: str, value: float) -> le.Solver:
    """The recipe's banded IRLS cut short.

    Capped at ``value`` steps (tol 1e-5, the recipe's), or 300 steps to tolerance ``value``.
    """
    if kind == "steps":
        return BandedIRLS(max_steps=int(value), tol=1e-5, dtype="float64")
    return BandedIRLS(max_steps=300, tol=value, dtype="float64")


def tracking_case(task: Any, batch: TrackingBatch) -> tuple[problems.Case, Tensor]:
    """The study's :class:`~studies.assumptions.problems.Case` for a batch of windows.

    Also returns whether the recipe's own solve converged, (B,).
    """
    with torch.no_grad():
        inputs = task.energy_inputs(batch)
        solution = task.layer(inputs)
    energy = copy.deepcopy(task.layer.energy).double()
    base = TrackFusionInputs(**{
        f.name: getattr(inputs, f.name).double()
        if getattr(inputs, f.name).is_floating_point() else getattr(inputs, f.name)
        for f in dataclasses.fields(inputs)})
    b = base.obs.shape[0]

    def make_inputs(theta: Tensor) -> TrackFusionInputs:
        return dataclasses.replace(base, logit=base.logit + theta[:, None, :])

    theta = torch.zeros(b, energy.num_trackers, dtype=torch.float64)
    tight = le.Newton(max_steps=200, tol=TIGHT_TOL, dtype="float64")
    with torch.no_grad():
        tight_solve = le.argmin(energy, make_inputs(theta), solver=tight,
                                x0=solution.x.double().reshape(b, -1), nonconverged="mask")
    x_star = tight_solve.x
    target = x_star - window_loss_gradient(x_star, batch)
    case = problems.Case(energy, make_inputs, theta, target, x_star, tight,
                         loss=lambda x: window_losses(x, batch), converged=tight_solve.converged)
    return case, solution.converged


def page(numbers: dict[str, Any], out: Path) -> None:
    """The figure and the page (matplotlib is imported only here)."""
    from studies.assumptions.tracking_page import page as write_page

    write_page(numbers, out)


PARTS = recipe_parts.Parts(
    name="tracking", recipe=RECIPE, fold_option="--data.init_args.fold", fold="0",
    ckpt="runs/cv/otb100/fold-0_seed-0/checkpoints/best.ckpt", samples=16, sizes=SIZES,
    batch=test_windows, case=tracking_case, page=page, truncated=truncated_solver,
    budgets=(1, 2, 3, 5, 10, 20), tols=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both states of θ over the seeds; write tracking.json, tracking.png and tracking.md."""
    return recipe_parts.main(PARTS, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
