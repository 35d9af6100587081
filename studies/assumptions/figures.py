"""The page's PNG figures (matplotlib, imported here only: the package never needs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display on the machines that regenerate the page
import itertools

import matplotlib.pyplot as plt
import torch

from studies.assumptions.summary import KAPPA_BINS

TOYS = {"regression": "robust regression (n = 6)", "kde": "kernel-density mode (n = 1)"}


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def convexity(results: dict[str, list[dict[str, Any]]], out: Path) -> None:
    """Smallest eigenvalue of H at x*, init against trained, and bad solves during training."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (toy, seeds) in zip(axes[:2], results.items(), strict=True):
        census = seeds[0]["training"]["census"]
        for step, label in ((0, "initial θ"), (max(census), f"after {max(census)} Adam steps")):
            mu = torch.cat([s["training"]["census"][step]["mu"][:, 0] for s in seeds])
            ax.hist(mu.clamp(-10, 1e3).numpy(), bins=_symlog_bins(), alpha=0.55, label=label)
        ax.set_xscale("symlog", linthresh=1e-3)
        ticks = [-1.0, -1e-2, 0.0, 1e-2, 1.0, 1e2]
        ax.set_xticks(ticks, ["−1", "−0.01", "0", "0.01", "1", "100"])
        ax.axvline(0, color="k", lw=0.8)
        ax.set(xlabel="smallest eigenvalue μ_min of H at x* (energy units / x²)",
               ylabel="solves", title=TOYS[toy])
        ax.legend()
    for toy, seeds in results.items():
        masked = sum(torch.tensor(s["training"]["masked"], dtype=torch.float64) for s in seeds)
        solves = sum(torch.tensor(s["training"]["solves"], dtype=torch.float64) for s in seeds)
        axes[2].plot(torch.arange(1, len(masked) + 1), 100 * masked / solves, label=TOYS[toy])
    axes[2].set(xlabel="Adam step", ylabel="masked solves (% of batch, 3 seeds pooled)",
                title="solves the layer gave no gradient")
    axes[2].legend()
    _save(fig, out / "convexity.png")


def _symlog_bins() -> list[float]:
    negative = [-10.0, -1.0, -0.1, -1e-2, -1e-3]
    positive = [float(v) for v in torch.logspace(-3, 3, 25)]
    return [*negative, 0.0, *positive]


def fidelity(summary: dict[str, Any], out: Path) -> None:
    """Median relative error and share of cosines ≥ 0.99 against λ, per κ bin and Hessian."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    labels = summary["dampings"]
    xs = range(len(labels))
    reg = summary["regression"]["fidelity_init"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for hessian, style in (("exact", "-o"), ("gauss_newton", "--s")):
        for colour, (lo, hi) in zip(colours, itertools.pairwise(KAPPA_BINS), strict=False):
            key = f"{lo:g}-{hi:g}"
            rel = [reg[f"{hessian}/{d}"]["by_kappa"][key]["median_rel_error"] for d in labels]
            share = [100 * reg[f"{hessian}/{d}"]["by_kappa"][key]["share_cos_99"]
                     for d in labels]
            label = f"{hessian.replace('_', '–')}, κ(H) ∈ [{lo:g}, {hi:g})"
            axes[0].plot(xs, rel, style, color=colour, label=label)
            axes[1].plot(xs, share, style, color=colour, label=label)
    kde = summary["kde"]["fidelity_init"]
    axes[2].plot(xs, [kde[f"exact/{d}"]["median_rel_error"] for d in labels], "-o")
    axes[0].set(yscale="log", ylabel="median relative error of dL/dθ",
                title="robust regression: damping bias")
    axes[1].set(ylabel="samples with cosine ≥ 0.99 (%)", title="robust regression: direction")
    axes[2].set(yscale="log", ylabel="median relative error of dL/dθ",
                title="kernel-density mode (θ = point weights)")
    for ax in axes:
        ax.set_xticks(list(xs), labels)
        ax.set_xlabel("damping λ of ImplicitAdjoint")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    _save(fig, out / "fidelity.png")


def drift(summary: dict[str, Any], adam_step: float, out: Path) -> None:
    """Predicted against re-solved Δx* per step size, and truncated inner solves.

    ``adam_step`` is ‖Δθ‖ of the regression's first Adam step, marked on its panel.
    """
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for ax, toy in zip(axes[:2], ("regression", "kde"), strict=True):
        numbers = summary[toy]["drift"]
        for name, errors in numbers["median_rel_error"].items():
            ax.loglog(numbers["sizes"], errors, "-o", label=name)
        if toy == "regression":
            ax.axvline(adam_step, color="grey", ls=":", label="first Adam step (lr 0.05)")
        ax.set(xlabel="‖Δθ‖ of the step (θ in log units / weights)",
               ylabel="median ‖Δx_pred − Δx*‖ / ‖Δx*‖", title=TOYS[toy])
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    _truncation(axes[2], summary["regression"]["truncation"]["steps"])
    _save(fig, out / "drift.png")


def _truncation(ax: plt.Axes, steps: dict[str, list[float]]) -> None:
    ax.semilogy(steps["value"], steps["implicit_rel"], "-o", label="implicit (λ = 1e-2) at x̃")
    ax.semilogy(steps["value"], steps["unrolled_rel"], "-s", label="unrolled through the steps")
    ax.set(xlabel="Newton step budget (tol 1e-6)",
           ylabel="median relative error of dL/dθ", title="robust regression: solve cut short")
    ax.grid(alpha=0.3, which="both")
    twin = ax.twinx()
    twin.plot(steps["value"], [100 * (1 - u) for u in steps["unconverged"]], ":", color="grey")
    twin.set(ylabel="solves converged (%, dotted)", ylim=(0, 105))
    ax.legend(fontsize=8, loc="lower left")


def stability(numbers: dict[str, Any], out: Path) -> None:
    """Evaluation loss, ‖dL/dθ‖ and masked solves per step, for each backward rule."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for name, row in numbers.items():
        (line,) = axes[0].plot(row["census_steps"], row["eval_loss_median"], "-o", ms=3,
                               label=name)
        axes[0].fill_between(row["census_steps"], row["eval_loss_min"], row["eval_loss_max"],
                             color=line.get_color(), alpha=0.12)
        steps = range(1, len(row["grad_norm_median"]) + 1)
        axes[1].semilogy(steps, row["grad_norm_median"], color=line.get_color(), lw=1)
        axes[2].plot(steps, [100 * m for m in row["masked_curve"]], color=line.get_color(),
                     lw=1)
    axes[0].set(xlabel="Adam step", ylabel="evaluation loss ½‖x* − x_true‖² (median, band: seeds)",
                title="robust regression: training with each backward rule")
    axes[1].set(xlabel="Adam step", ylabel="‖dL/dθ‖ of the batch (median over seeds)",
                title="gradient norm")
    axes[2].set(xlabel="Adam step", ylabel="masked solves (% of batch, mean over seeds)",
                title="solves given no gradient")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    _save(fig, out / "stability.png")


def trajectories(theta: dict[str, list[list[list[float]]]], out: Path) -> None:
    """What the energies learned: θ per step and seed (regression: log w, log δ; kde: log σ)."""
    regression, kde = theta["regression"], theta["kde"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, run in zip(colours, regression, strict=False):
        values = torch.tensor(run)  # (steps, n + 1): log w, then log δ
        steps = torch.arange(1, values.shape[0] + 1)
        axes[0].plot(steps, values[:, :-1].exp(), color=colour, lw=0.8)
        axes[1].plot(steps, values[:, -1].exp(), color=colour)
    for colour, run in zip(colours, kde, strict=False):
        values = torch.tensor(run)
        axes[2].plot(torch.arange(1, values.shape[0] + 1), values[:, 0].exp(), color=colour)
    axes[0].set(yscale="log", xlabel="Adam step", ylabel="prior weight wⱼ (one line per j)",
                title="robust regression: prior weights (colour = seed)")
    axes[1].set(xlabel="Adam step", ylabel="Cauchy kernel scale δ (target noise 0.3)",
                title="robust regression: kernel scale")
    axes[2].set(xlabel="Adam step", ylabel="bandwidth σ",
                title="kernel-density mode: bandwidth (colour = seed)")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    _save(fig, out / "trajectories.png")


def cost(numbers: dict[str, Any], out: Path) -> None:
    """Step time against n per backward mode; grid search against the learned θ."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    records = numbers["step_cost"]
    for mode in dict.fromkeys(r["mode"] for r in records):
        rows = [r for r in records if r["mode"] == mode]
        axes[0].loglog([r["variables"] for r in rows], [r["backward_ms"] for r in rows], "-o",
                       label=f"backward, {mode.replace('_', '–')}")
    rows = [r for r in records if r["mode"] == "exact"]
    axes[0].loglog([r["variables"] for r in rows], [r["forward_ms"] for r in rows], "k:",
                   label="forward (LM, 5 steps)")
    axes[0].set(xlabel="variables n", ylabel=f"ms per batch of {records[0]['batch_size']}",
                title="cost of a training step (bench scaling)")
    axes[0].legend(fontsize=8)
    grid = numbers["grid"]
    points = [r["points"] for r in grid["grid"]]
    axes[1].semilogx(points, [r["eval_loss_median"] for r in grid["grid"]], "-o",
                     label="grid search (shared w, δ)")
    axes[1].axhline(grid["learned_eval_loss_median"], color="k", ls="--",
                    label="learned θ (λ = 1e-2), median over seeds")
    axes[1].set(xlabel="grid points k²", ylabel="evaluation loss (median over seeds)",
                title="robust regression: grid search against learning")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    _save(fig, out / "cost.png")
