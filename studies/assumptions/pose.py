"""Parts 1–3 of the study on the multi-view pose task (Human3.6M detections, the recipe's energy).

``python -m studies.assumptions.pose --out docs/study`` writes ``pose.json``, ``pose.png`` and
``pose.md``. The energy is ``recipes/pose/h36m_multiview.yaml``'s, as initialised and as trained
in its leave-one-subject-out fold (``--ckpt``, the fold model of ``lightning-energy cv``); the
frames are the held-out subject's test frames, drawn per seed.

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

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

import lightning_energy as le
from lightning_energy.cli import run_cli
from lightning_energy.energies.pose import PoseEnergyInputs
from lightning_energy.tasks.pose import select_components
from studies.assumptions import drift, fidelity, problems
from studies.assumptions.run import adjoints, unit_rows
from studies.assumptions.summary import drift_numbers, fidelity_numbers

RECIPE = "recipes/pose/h36m_multiview.yaml"
TIGHT_TOL = 1e-10
"""The re-solves' ‖∇ₓE‖ bound: float64 rounding leaves ~1e-12 on these energies (E ~ 100)."""
SIZES = [1e-3, 1e-2, 0.1, 0.3, 1.0]
"""Step sizes ‖Δθ‖ of the confidences (a confidence is 1; 1.0 moves them by 1 in all)."""


def load_task(fold: str, ckpt: str | None) -> tuple[Any, Any]:
    """The recipe's task (initial, or with ``ckpt``'s weights) and DataModule for ``fold``."""
    cli = run_cli(["--config", RECIPE, "--data.init_args.fold", fold,
                   "--trainer.logger", "false"], run=False)
    task = cli.model
    if ckpt is not None:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
        task.load_state_dict(state)
    task.eval()
    return task, cli.datamodule


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
        x_star = le.argmin(energy, make_inputs(theta), solver=tight, x0=picked.x.double(),
                           nonconverged="mask").x
    target = x_star - pose_loss_gradient(energy, x_star, base.component, batch.joints3d)
    return problems.Case(energy, make_inputs, theta, target, x_star, tight), picked.converged


def pose_loss_gradient(energy: Any, x: Tensor, component: Tensor, truth_mm: Tensor) -> Tensor:
    """∂/∂x of ½‖P(x) − P_true‖² over root-aligned joints (metres), per frame (B, n)."""
    with torch.enable_grad():
        z = x.detach().requires_grad_(True)
        pose = energy.pose(z, component)
        truth = truth_mm.to(pose.dtype) / 1000.0
        error = (pose - pose[:, :1]) - (truth - truth[:, :1])
        (grad,) = torch.autograd.grad(0.5 * (error**2).sum(), z)
    return grad.detach()


def convexity_numbers(mu: Tensor, recipe_converged: Tensor) -> dict[str, Any]:
    """Share of solves whose H at x* is not positive definite, κ(H) and the recipe's solves."""
    bad = mu[:, 0] <= 0
    kappa = mu[:, -1] / mu[:, 0]
    return {"solves": int(mu.shape[0]), "not_pd_share": float(bad.double().mean()),
            "mu_min_median": float(mu[:, 0].median()),
            "mu_min_quantiles": [float(q) for q in
                                 torch.quantile(mu[:, 0], torch.tensor([0.05, 0.5, 0.95],
                                                                       dtype=mu.dtype))],
            "kappa_median": float(kappa[~bad].median()) if bool((~bad).any()) else None,
            "recipe_unconverged_share": float((~recipe_converged).double().mean())}


def run_seed(task: Any, batch: Any) -> dict[str, Any]:
    """Parts 1–3 on one batch of frames at the task's current θ."""
    case, recipe_converged = pose_case(task, batch)
    fid = fidelity.fidelity(case, ("exact", "gauss_newton"))
    direction = unit_rows(-fid["reference"])  # each frame's own descent, as per-point weights
    # Whether a cold restart lands on another branch: the recipe's solver from its own start.
    cold = task.layer.solver
    return {"fidelity": fid, "mu": problems.eigenvalues(case.energy, case.x_star,
                                                        case.make_inputs(case.theta)),
            "recipe_converged": recipe_converged,
            "drift": drift.step_drift(case, direction, SIZES, adjoints(True), cold)}


def summarise(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's numbers for one state of θ (initial or trained), pooled over seeds."""
    mu = torch.cat([s["mu"] for s in seeds])
    converged = torch.cat([s["recipe_converged"] for s in seeds])
    fid = fidelity_numbers([{"fidelity": s["fidelity"]} for s in seeds], "fidelity")
    # κ(H) of these mixed-unit variables is ~1e4 throughout, so the toys' κ < 1000 sanity set
    # is empty: the reference is checked against λ = 0 on every compared frame instead.
    undamped = torch.cat([s["fidelity"]["exact/0.0"]["rel_error"][s["fidelity"]["valid"]]
                          for s in seeds])
    fid["sanity"] = {"count": int(undamped.numel()),
                     "max_rel_error": float(undamped.max()) if undamped.numel() else None}
    return {"convexity": convexity_numbers(mu, converged), "fidelity": fid,
            "drift": drift_numbers(seeds), "mu_min": mu[:, 0].tolist()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both states of θ over the seeds; write pose.json, pose.png and pose.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fold", default="S8", help="held-out subject")
    parser.add_argument("--ckpt", help="the recipe's trained fold model",
                        default="runs/cv/pose/learned/fold-S8_seed-0/checkpoints/last.ckpt")
    parser.add_argument("--frames", type=int, default=48, help="frames per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("docs/study"))
    args = parser.parse_args(argv)
    if not Path(args.ckpt).is_file():
        raise SystemExit(f"--ckpt {args.ckpt}: no such checkpoint; train the fold with "
                         f"`lightning-energy cv --config {RECIPE} --folds {args.fold}`")
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)  # unconverged solves are counted here
    start = time.perf_counter()
    numbers: dict[str, Any] = {"config": {"fold": args.fold, "frames": args.frames,
                                          "seeds": args.seeds, "sizes": SIZES}}
    for state, ckpt in (("init", None), ("trained", args.ckpt)):
        task, data = load_task(args.fold, ckpt)
        seeds = [run_seed(task, test_batch(data, args.frames, seed)) for seed in args.seeds]
        numbers[state] = summarise(seeds)
    numbers["config"]["run_seconds"] = round(time.perf_counter() - start)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pose.json").write_text(json.dumps(numbers, indent=1, ensure_ascii=False))
    from studies.assumptions.pose_page import figure, write  # matplotlib only here

    figure(numbers, args.out / "pose.png")
    write(numbers, args.out / "pose.md")
    return numbers


if __name__ == "__main__":
    main()
