"""Parts 1–3 of the study on the multi-view pose task (Human3.6M detections, the recipe's energy).

``python -m studies.assumptions.pose --out docs/study`` writes ``pose.json``, ``pose.png`` and
``pose.md`` (the runs: :mod:`studies.assumptions.recipe_parts`). The energy is
``recipes/pose/h36m_multiview.yaml``'s, as initialised and as trained in its
leave-one-subject-out fold (``--ckpt``, the fold model of ``lightning-energy cv``); the frames
are the held-out subject's test frames, drawn per seed.

θ is the per-detection confidence (B, C·J) that multiplies each joint's learned weight: the
handle through which the end-to-end recipes' gradient reaches the detector (all 1 for stored
detections; an invisible joint's column is 0 throughout). Each frame is solved by the recipe's
own layer; its lowest-energy component is then refined by Newton to ‖∇ₓE‖ ≤ 1e-10, and that
component's problem is the study's sample. The loss is ½‖P(x) − P_true‖² over the root-aligned
joints (metres); the toys' functions take a target in x, so it is given as x* − ∂L/∂x at x*, whose
½‖x − target‖² has the same gradient at x* (parts 2 and 3 only differentiate at x*; the toys'
truncated-solve part is not run here, since there the two losses differ).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

import lightning_energy as le
from lightning_energy.energies.pose import PoseEnergyInputs
from lightning_energy.tasks.pose import select_components
from studies.assumptions import problems, recipe_parts

RECIPE = "recipes/pose/h36m_multiview.yaml"
TIGHT_TOL = 1e-10
"""The re-solves' ‖∇ₓE‖ bound: float64 rounding leaves ~1e-12 on these energies (E ~ 100)."""
SIZES = (1e-3, 1e-2, 0.1, 0.3, 1.0)
"""Step sizes ‖Δθ‖ of the confidences (a confidence is 1; 1.0 moves them by 1 in all)."""


def load_task(fold: str, ckpt: str | None) -> tuple[Any, Any]:
    """The recipe's task (initial, or with ``ckpt``'s weights) and DataModule for ``fold``."""
    return recipe_parts.load_task(PARTS, fold, ckpt)


def test_batch(data: Any, num: int, seed: int) -> Any:
    """``num`` test frames of the held-out subject drawn without replacement by ``seed``."""
    data.setup("test")
    loader = data.test_dataloader()
    dataset = loader.dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    subset = Subset(dataset, order[:num].sort().values.tolist())
    return next(iter(DataLoader(subset, batch_size=num, collate_fn=loader.collate_fn)))


def pose_case(task: Any, batch: Any) -> tuple[problems.Case, Tensor]:
    """The study's :class:`~studies.assumptions.problems.Case` for a batch of frames.

    Also returns whether the recipe's own solve (its solver and step cap) converged, (B,).
    """
    energy = task.pose_energy
    m = energy.num_components
    inputs = task.energy_inputs(batch)
    with torch.no_grad():
        solution = task.layer(inputs)
    best, picked = select_components(solution, m)
    rows = torch.arange(best.shape[0]) * m + best
    fields = {f.name: getattr(inputs, f.name) for f in dataclasses.fields(inputs)}
    chosen = {k: None if v is None else v[rows] for k, v in fields.items()}
    base = PoseEnergyInputs(**chosen)
    b, c, j = base.visible.shape

    def make_inputs(theta: Tensor) -> PoseEnergyInputs:
        return dataclasses.replace(base, confidence=theta.reshape(b, c, j))

    theta = torch.ones(b, c * j, dtype=torch.float64)
    tight = le.Newton(max_steps=200, tol=TIGHT_TOL, dtype="float64")
    with torch.no_grad():
        tight_solve = le.argmin(energy, make_inputs(theta), solver=tight, x0=picked.x.double(),
                                nonconverged="mask")
    x_star = tight_solve.x
    target = x_star - pose_loss_gradient(energy, x_star, base.component, batch.joints3d)
    case = problems.Case(energy, make_inputs, theta, target, x_star, tight,
                         converged=tight_solve.converged)
    return case, picked.converged


def pose_loss_gradient(energy: Any, x: Tensor, component: Tensor, truth_mm: Tensor) -> Tensor:
    """∂/∂x of ½‖P(x) − P_true‖² over root-aligned joints (metres), per frame (B, n)."""
    with torch.enable_grad():
        z = x.detach().requires_grad_(True)
        pose = energy.pose(z, component)
        truth = truth_mm.to(pose.dtype) / 1000.0
        error = (pose - pose[:, :1]) - (truth - truth[:, :1])
        (grad,) = torch.autograd.grad(0.5 * (error**2).sum(), z)
    return grad.detach()


def page(numbers: dict[str, Any], out: Path) -> None:
    """The figure and the page (matplotlib is imported only here)."""
    from studies.assumptions.pose_page import page as write_page

    write_page(numbers, out)


PARTS = recipe_parts.Parts(
    name="pose", recipe=(RECIPE,), fold_option="--data.init_args.fold", fold="S8",
    ckpt="runs/cv/pose/learned/fold-S8_seed-0/checkpoints/last.ckpt", samples=48, sizes=SIZES,
    batch=test_batch, case=pose_case, page=page)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both states of θ over the seeds; write pose.json, pose.png and pose.md."""
    return recipe_parts.main(PARTS, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
