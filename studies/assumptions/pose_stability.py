"""Part 4 of the study on the multi-view pose task: training curves per backward rule.

``python -m studies.assumptions.pose_stability --out docs/study`` trains the recipe
``recipes/pose/h36m_multiview.yaml`` on its own split (train S1 S5 S6 S7, validate on the
held-out S8) with each backward rule — the implicit adjoint with the exact Hessian and
λ ∈ {0, 1e-2 (the recipe's), 1, auto}, and unrolled differentiation through the training
solver's iterations — for several seeds, through ``lightning-energy fit`` (the recipe's task,
DataModule and Trainer; a CSV logger in place of wandb). Every step logs what every recipe run
logs: the training loss, the norm of the energy parameters' gradient
(``EnergyParameterMonitor``) and the masked solves (``SolverDiagnostics``). It writes
``pose_stability.json``, ``.png`` and ``.md``.
"""

from __future__ import annotations

import json
import math
import statistics
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from studies.assumptions.pose_trajectories import RECIPE
from studies.assumptions.recipe_runs import command_section, fit, study_parser

_ADJOINT = "--model.init_args.adjoint"
SETTINGS: dict[str, list[str]] = {
    "λ = 0": [f"{_ADJOINT}.init_args.damping", "0.0"],
    "λ = 1e-2 (recipe)": [],
    "λ = 1": [f"{_ADJOINT}.init_args.damping", "1.0"],
    "λ = auto": [f"{_ADJOINT}.init_args.damping", "auto"],
    "unrolled": [_ADJOINT, '{"class_path": "lightning_energy.adjoints.UnrolledAdjoint"}'],
}
"""Backward rule → the recipe overrides that select it (exact Hessian unless unrolled)."""

VAL_STRIDE = 16
"""Every 16th stored frame of S8 validates at the end (~800 frames; the recipe's 128 is ~100)."""


def _column(rows: list[dict[str, str]], name: str) -> dict[int, float]:
    return {int(r["step"]): float(r[name]) for r in rows if r.get(name)}


def curves(rows: list[dict[str, str]]) -> dict[str, Any]:
    """Per step: training loss (mm), energy gradient norm, masked share; the final validation."""
    masked, solves = _column(rows, "train/solver/masked"), _column(rows, "train/solver/solves")
    steps = sorted(set(masked) & set(solves))
    out = {name: {"step": sorted(values), "value": [values[s] for s in sorted(values)]}
           for name, values in (("loss", _column(rows, "train/loss_step")),
                                ("grad_norm", _column(rows, "energy/grad_norm")))}
    out["masked_share"] = {"step": steps, "value": [masked[s] / solves[s] for s in steps]}
    final = {k: _column(rows, f"val/{k}") for k in ("mpjpe", "pa_mpjpe")}
    out["val"] = {k: v[max(v)] for k, v in final.items() if v}
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per setting, over seeds: final validation errors, largest gradient norm, masked share."""
    out: dict[str, dict[str, Any]] = {}
    for name in SETTINGS:
        mine = [r for r in runs if r["setting"] == name]
        if not mine:
            continue

        def spread(values: list[float]) -> list[float]:
            return [statistics.fmean(values), statistics.pstdev(values)]

        norms = [max(r["curves"]["grad_norm"]["value"]) for r in mine]
        out[name] = {
            "seeds": [r["seed"] for r in mine],
            "val_mpjpe": spread([r["curves"]["val"]["mpjpe"] for r in mine]),
            "val_pa_mpjpe": spread([r["curves"]["val"]["pa_mpjpe"] for r in mine]),
            "final_loss": spread([statistics.fmean(r["curves"]["loss"]["value"][-20:])
                                  for r in mine]),
            "max_grad_norm": [min(norms), max(norms)],
            "median_grad_norm": statistics.median(
                v for r in mine for v in r["curves"]["grad_norm"]["value"]),
            "masked_share": statistics.fmean(
                v for r in mine for v in r["curves"]["masked_share"]["value"]),
            "max_masked_share": max(max(r["curves"]["masked_share"]["value"]) for r in mine),
            "seconds": spread([r["seconds"] for r in mine]),
        }
    return out


def _smooth(values: list[float], width: int = 10) -> list[float]:
    return [statistics.fmean(values[max(0, i - width + 1):i + 1]) for i in range(len(values))]


def _mean_curve(runs: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """The seeds' mean at each step all of them logged, then a 10-step moving mean."""
    steps = sorted(set.intersection(*(set(r["curves"][key]["step"]) for r in runs)))
    by_run = [dict(zip(r["curves"][key]["step"], r["curves"][key]["value"], strict=True))
              for r in runs]
    return steps, _smooth([statistics.fmean(v[s] for v in by_run) for s in steps])


def figure(runs: list[dict[str, Any]], path: Path) -> None:
    """Training loss, gradient norm, masked share per step: one line per rule (seeds' mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = dict(zip(SETTINGS, ["-", "--", "-", "-", ":"], strict=True))
    colours = dict(zip(SETTINGS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = (("loss", "training loss: MPJPE of the batch (mm)", False),
              ("grad_norm", "‖∂L/∂θ‖ over the energy's parameters (log scale)", True),
              ("masked_share", "share of the step's solves masked (not converged)", False))
    for ax, (key, title, log) in zip(axes, panels, strict=True):
        for name in SETTINGS:
            mine = [r for r in runs if r["setting"] == name]
            if mine:
                steps, values = _mean_curve(mine, key)
                ax.plot(steps, values, styles[name], color=colours[name], lw=1.5, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step (batches of 64 frames)")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Multi-view pose recipe trained with each backward rule (mean over seeds, "
                 "10-step moving mean)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _final(result: dict[str, Any], setting: str, seed: int) -> float:
    (run,) = [r for r in result["runs"] if r["setting"] == setting and r["seed"] == seed]
    return float(run["curves"]["val"]["mpjpe"])


def _pm(values: list[float], digits: int = 1) -> str:
    return f"{values[0]:.{digits}f} ± {values[1]:.{digits}f}"


def page(result: dict[str, Any], command: str) -> str:
    """The Markdown page: the answer with its numbers, the table, the figure, the command."""
    table = result["summary"]
    rows = "\n".join(
        f"| {name} | {_pm(s['val_mpjpe'])} | {_pm(s['val_pa_mpjpe'])} | {_pm(s['final_loss'])} "
        f"| {s['median_grad_norm']:.3g} | {s['max_grad_norm'][0]:.3g}–{s['max_grad_norm'][1]:.3g} "
        f"| {s['masked_share']:.1%} (≤ {s['max_masked_share']:.1%}) | {_pm(s['seconds'], 0)} |"
        for name, s in table.items())
    recipe = table.get("λ = 1e-2 (recipe)")
    lines = []
    if recipe:
        for name, st in table.items():
            if name == "λ = 1e-2 (recipe)":
                continue
            parts = []
            for key, label in (("val_mpjpe", "MPJPE"), ("val_pa_mpjpe", "PA-MPJPE")):
                gap = st[key][0] - recipe[key][0]
                noise = 2 * max(st[key][1], recipe[key][1])
                parts.append(f"{label} {gap:+.1f} mm ("
                             + ("within" if abs(gap) <= noise else "outside")
                             + f" twice the seed spread, {noise:.1f} mm)")
            paired = [_final(result, name, seed) - _final(result, "λ = 1e-2 (recipe)", seed)
                      for seed in result["seeds"]]
            parts.append("per seed (same start and batches) MPJPE "
                         + ", ".join(f"{d:+.2f}" for d in paired) + " mm")
            lines.append(f"- **{name}** against the recipe's λ = 1e-2: {'; '.join(parts)}; "
                         f"masked {st['masked_share']:.1%} against {recipe['masked_share']:.1%}; "
                         f"{st['seconds'][0] / recipe['seconds'][0]:.2f} × its time.")
        lines.insert(0, f"- **The recipe's λ = 1e-2** reached {_pm(recipe['val_mpjpe'])} mm MPJPE, "
                        f"{_pm(recipe['val_pa_mpjpe'])} mm PA-MPJPE on the held-out S8.")
    if {"λ = 0", "unrolled"} <= set(table):
        apart = max(abs(_final(result, "unrolled", seed) - _final(result, "λ = 0", seed))
                    for seed in result["seeds"])
        lines.append(f"- **Unrolled and λ = 0** (both the exact gradient of a converged solve) "
                     f"ended within {apart:.2g} mm of each other on every seed.")
    norms = [v for r in result["runs"] for v in r["curves"]["grad_norm"]["value"]]
    medians = [st["median_grad_norm"] for st in table.values()]
    lines.append(f"- Every run's gradient stayed "
                 f"{'finite' if all(map(math.isfinite, norms)) else 'NOT finite'}; the largest "
                 f"norm of any step was {max(norms):.3g} (per rule medians "
                 f"{min(medians):.3g}–{max(medians):.3g}).")
    answer = "\n".join(lines)
    seeds = ", ".join(map(str, result["seeds"]))
    return f"""# Study, multi-view pose: training with each backward rule (part 4)

Part 4 of the [assumption study](index.md) on the real task: the recipe `{RECIPE}` trained on
its own split (S1 S5 S6 S7; the held-out S8 validates, every {VAL_STRIDE}th stored frame) with
each backward rule, seeds {seeds} (the same seed gives every rule the same initial parameters and
batches). The values are those every recipe run logs, here every step to CSV.

## Answer

{answer}

## Table

Mean ± standard deviation over seeds. Loss: the training batch's root-aligned MPJPE, mean of
the last 20 steps. ‖∂L/∂θ‖: the 2-norm of the loss's gradient over every energy parameter before
each optimizer step (median over all steps and seeds; range over seeds of each run's largest).
Masked: the share of the training solves (64 frames × 3 components per step) left without a
gradient because the LM solve had not converged (mean over steps; largest step).

| backward rule | val MPJPE (mm) | val PA-MPJPE (mm) | train loss (mm) | ‖∂L/∂θ‖ median \
| largest | masked | seconds per run |
|---|---|---|---|---|---|---|---|
{rows}

![Training curves per backward rule](pose_stability.png)

*x: training step (batches of 64 frames). Left: the training batch's MPJPE; middle: the norm of
the energy parameters' gradient; right: the share of the step's solves masked for not
converging. One line per backward rule: the mean over seeds, then a moving mean over 10 steps.
Where λ = 0, λ = 1e-2 and unrolled agree the lines lie on each other (dashed, dotted).*

## Protocol

- **Task**: `{RECIPE}` unchanged but for the backward rule: 150 Adam steps of 64 frames
  (energy rate 1e-2, shape model 2e-3), Levenberg–Marquardt ≤ 30 steps in float64,
  `nonconverged="mask"`. The implicit rules use the exact Hessian; "unrolled" backpropagates
  through the 30 LM iterations (`UnrolledAdjoint`).
- **Validation**: once, after the last step, on every {VAL_STRIDE}th stored frame of S8.
- **Hardware**: the 2-core development VM, one thread per run, two runs at a time.

{command_section(command, "pose_stability")}"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train every rule for every seed, read the logs, write the figure, numbers and page."""
    parser = study_parser(__doc__, "pose_stability", replot=True)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args, overrides = parser.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    command = ("OMP_NUM_THREADS=1 python -m studies.assumptions.pose_stability --out "
               f"{args.out}" + (f" --seeds {' '.join(map(str, args.seeds))}"
                                if args.seeds != [0, 1, 2] else ""))
    if args.replot:
        result = json.loads((args.out / "pose_stability.json").read_text())
        figure(result["runs"], args.out / "pose_stability.png")
        (args.out / "pose_stability.md").write_text(page(result, command))
        return result
    common = ["--trainer.log_every_n_steps", "1",
              "--data.init_args.val_frame_stride", str(VAL_STRIDE)]
    jobs = [(name, seed) for name in args.settings for seed in args.seeds]
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = {job: pool.submit(fit, job[1], None, args.runs / _slug(*job),
                                    [*SETTINGS[job[0]], *common, *overrides], RECIPE)
                   for job in jobs}
        runs = [{"setting": name, "seed": seed, "seconds": futures[name, seed].result()["seconds"],
                 "curves": curves(futures[name, seed].result()["rows"])}
                for name, seed in jobs]
    figure(runs, args.out / "pose_stability.png")
    result = {"seeds": args.seeds, "summary": summary(runs), "runs": runs}
    (args.out / "pose_stability.json").write_text(json.dumps(result, indent=1))
    (args.out / "pose_stability.md").write_text(page(result, command))
    return result


def _slug(setting: str, seed: int) -> str:
    name = setting.split(" (")[0].replace("λ = ", "lambda_")
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-.") else "_" for ch in name)
    return f"{safe}-seed{seed}"


if __name__ == "__main__":
    main()
