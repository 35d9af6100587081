"""Parts 1–3 of the study on a recipe's own energy: what the pose and tracking drivers share.

A driver names its recipe and says how to draw the held-out samples and build the study's
:class:`~studies.assumptions.problems.Case` from them (:class:`Parts`); :func:`main` then runs
the initial energy and the trained fold model over the seeds: the smallest eigenvalue of the
exact Hessian at x* (part 1), the damped gradients against central finite differences of tight
re-solves (part 2), and the predicted against the re-solved move of x* after a step along each
sample's descent, with cold restarts of the recipe's own solver (part 3).
"""

from __future__ import annotations

import argparse
import json
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightning_energy.callbacks.init_step import InitStep
from lightning_energy.cli import run_cli
from studies.assumptions import drift, fidelity, problems
from studies.assumptions.run import adjoints, unit_rows
from studies.assumptions.summary import drift_numbers, fidelity_numbers, truncation_numbers


@dataclass(frozen=True)
class Parts:
    """What parts 1–3 need to know of a recipe.

    ``batch(data, num, seed)`` draws ``num`` held-out samples; ``case(task, batch)`` returns the
    study's case at the task's current parameters and whether the recipe's own solve converged
    per sample (B,). ``page(numbers, out)`` writes the figure and the page. With
    ``truncated(kind, value)`` (the recipe's solver capped at ``budgets`` steps or loosened to
    ``tols``), part 3 also compares the gradients of solves cut short with the reference; it
    needs a case whose loss is the task's own (``Case(loss=...)``), since a truncated x is not x*.
    """

    name: str  # the driver's module, and the stem of its json, png and md
    recipe: tuple[str, ...]  # --config files, in order
    fold_option: str  # the data option that selects the held-out fold
    fold: str  # its default
    ckpt: str  # the default trained fold model: the state the recipe's cv tested
    samples: int  # samples per seed by default
    sizes: tuple[float, ...]  # the drift's step sizes ‖Δθ‖
    batch: Callable[[Any, int, int], Any]
    case: Callable[[Any, Any], tuple[problems.Case, Tensor]]
    page: Callable[[dict[str, Any], Path], None]
    truncated: Callable[[str, float], Any] | None = None  # the recipe's solver cut short
    budgets: tuple[int, ...] = ()  # its step caps
    tols: tuple[float, ...] = ()  # its loosened tolerances


def load_task(parts: Parts, fold: str, ckpt: str | None) -> tuple[Any, Any]:
    """The recipe's task and DataModule for ``fold``, trained (``ckpt``'s weights) or initial.

    The initial task is the one training starts from: the recipe's
    :class:`~lightning_energy.callbacks.InitStep` callbacks applied as at the start of ``fit``.
    """
    args = [a for config in parts.recipe for a in ("--config", config)]
    cli = run_cli([*args, parts.fold_option, fold, "--trainer.logger", "false"], run=False)
    task, data = cli.model, cli.datamodule
    if ckpt is not None:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
        task.load_state_dict(state)
    else:
        data.setup("fit")
        trainer = types.SimpleNamespace(datamodule=data, ckpt_path=None)
        for callback in cli.trainer.callbacks:
            if isinstance(callback, InitStep):
                callback.setup(trainer, task, "fit")
    task.eval()
    return task, data


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


def run_seed(parts: Parts, task: Any, batch: Any) -> dict[str, Any]:
    """Parts 1–3 on one batch of samples at the task's current θ."""
    case, recipe_converged = parts.case(task, batch)
    fid = fidelity.fidelity(case, ("exact", "gauss_newton"))
    direction = unit_rows(-fid["reference"])  # each sample's own descent
    # Whether a cold restart lands on another branch: the recipe's solver from its own start.
    cold = task.layer.solver
    out = {"fidelity": fid, "mu": problems.eigenvalues(case.energy, case.x_star,
                                                       case.make_inputs(case.theta)),
           "recipe_converged": recipe_converged,
           "drift": drift.step_drift(case, direction, list(parts.sizes), adjoints(True), cold)}
    if parts.truncated is not None:
        out["truncation"] = drift.truncation(case, fid["reference"], list(parts.budgets),
                                             list(parts.tols), make_solver=parts.truncated)
    return out


def summarise(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's numbers for one state of θ (initial or trained), pooled over seeds."""
    mu = torch.cat([s["mu"] for s in seeds])
    converged = torch.cat([s["recipe_converged"] for s in seeds])
    fid = fidelity_numbers([{"fidelity": s["fidelity"]} for s in seeds], "fidelity")
    # The toys' sanity set (κ < 1000) may be empty on a real task (pose: κ ~ 1e4): the
    # reference is checked against λ = 0 on every compared sample instead.
    undamped = torch.cat([s["fidelity"]["exact/0.0"]["rel_error"][s["fidelity"]["valid"]]
                          for s in seeds])
    fid["sanity"] = {"count": int(undamped.numel()),
                     "max_rel_error": float(undamped.max()) if undamped.numel() else None}
    out = {"convexity": convexity_numbers(mu, converged), "fidelity": fid,
           "drift": drift_numbers(seeds), "mu_min": mu[:, 0].tolist()}
    if "truncation" in seeds[0]:
        out["truncation"] = truncation_numbers(seeds)
    return out


def main(parts: Parts, description: str, argv: list[str] | None = None) -> dict[str, Any]:
    """Run both states of θ over the seeds; write ``{name}.json``, ``.png`` and ``.md``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fold", default=parts.fold, help="held-out fold")
    parser.add_argument("--ckpt", default=parts.ckpt, help="the recipe's trained fold model")
    parser.add_argument("--samples", type=int, default=parts.samples, help="samples per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("docs/study"))
    args = parser.parse_args(argv)
    if not Path(args.ckpt).is_file():
        raise SystemExit(f"--ckpt {args.ckpt}: no such checkpoint; train the fold with "
                         f"`lightning-energy cv --config {' --config '.join(parts.recipe)} "
                         f"--folds {args.fold}`")
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)  # unconverged solves are counted here
    start = time.perf_counter()
    numbers: dict[str, Any] = {"config": {"fold": args.fold, "samples": args.samples,
                                          "seeds": args.seeds, "sizes": list(parts.sizes)}}
    for state, ckpt in (("init", None), ("trained", args.ckpt)):
        task, data = load_task(parts, args.fold, ckpt)
        seeds = [run_seed(parts, task, parts.batch(data, args.samples, seed))
                 for seed in args.seeds]
        numbers[state] = summarise(seeds)
    numbers["config"]["run_seconds"] = round(time.perf_counter() - start)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{parts.name}.json").write_text(json.dumps(numbers, indent=1,
                                                            ensure_ascii=False))
    parts.page(numbers, args.out)
    return numbers
