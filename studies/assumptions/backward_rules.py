"""Part 4 of the study on a real task: the recipe trained with each backward rule.

A :class:`Task` names the recipe, the overrides that select each backward rule, the validation
metrics and the page's prose; :func:`main` trains every rule for every seed through
``lightning-energy fit`` (the recipe's task, DataModule and Trainer; a CSV logger in place of
wandb) and reads what every recipe run logs, here every step: the training loss, the norm of
the energy parameters' gradient (``EnergyParameterMonitor``) and the masked solves
(``SolverDiagnostics``). The drivers are ``pose_stability`` and ``tracking_stability``.
"""

from __future__ import annotations

import json
import math
import statistics
import textwrap
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from studies.assumptions.recipe_runs import column, command_section, fit, study_parser

UNROLLED = '{"class_path": "lightning_energy.adjoints.UnrolledAdjoint"}'


@dataclass(frozen=True)
class Metric:
    """A validation metric: its logged name (``val/{key}``), label, unit, direction."""

    key: str
    label: str
    unit: str
    higher_is_better: bool = False


@dataclass(frozen=True)
class Task:
    """What part 4 needs to know of a recipe."""

    name: str  # the module, and the stem of its json, png and md
    title: str  # "multi-view pose"
    recipes: tuple[str, ...]  # a recipe and its overlays
    fold: str | None  # --data.init_args.fold, or None for the recipe's own split
    settings: dict[str, list[str]]  # backward rule -> the overrides that select it
    reference: str  # the setting the others are compared with (the recipe's own)
    metrics: tuple[Metric, ...]  # the first one is compared per seed
    overrides: tuple[str, ...]  # for every run (logging every step, validation frames)
    loss: str  # what the training loss is, with its unit
    step: str  # what a training step is
    intro: str  # the page's first paragraph: recipe, split, validation
    protocol: str  # the page's protocol bullets


def curves(rows: list[dict[str, str]], metrics: tuple[Metric, ...]) -> dict[str, Any]:
    """Per step: training loss, energy gradient norm, masked share; the last validation."""
    masked, solves = column(rows, "train/solver/masked"), column(rows, "train/solver/solves")
    steps = sorted(set(masked) & set(solves))
    out = {name: {"step": sorted(values), "value": [values[s] for s in sorted(values)]}
           for name, values in (("loss", column(rows, "train/loss_step")),
                                ("grad_norm", column(rows, "energy/grad_norm")))}
    out["masked_share"] = {"step": steps, "value": [masked[s] / solves[s] for s in steps]}
    final = {m.key: column(rows, f"val/{m.key}") for m in metrics}
    out["val"] = {k: v[max(v)] for k, v in final.items() if v}
    return out


def _spread(values: list[float]) -> list[float]:
    return [statistics.fmean(values), statistics.pstdev(values)]


def summary(runs: list[dict[str, Any]], task: Task) -> dict[str, dict[str, Any]]:
    """Per setting, over seeds: last validation, largest gradient norm, masked share."""
    out: dict[str, dict[str, Any]] = {}
    for name in task.settings:
        mine = [r for r in runs if r["setting"] == name]
        if not mine:
            continue
        norms = [max(r["curves"]["grad_norm"]["value"]) for r in mine]
        out[name] = {
            "seeds": [r["seed"] for r in mine],
            **{f"val_{m.key}": _spread([r["curves"]["val"][m.key] for r in mine])
               for m in task.metrics},
            "final_loss": _spread([statistics.fmean(r["curves"]["loss"]["value"][-20:])
                                   for r in mine]),
            "max_grad_norm": [min(norms), max(norms)],
            "median_grad_norm": statistics.median(
                v for r in mine for v in r["curves"]["grad_norm"]["value"]),
            "masked_share": statistics.fmean(
                v for r in mine for v in r["curves"]["masked_share"]["value"]),
            "max_masked_share": max(max(r["curves"]["masked_share"]["value"]) for r in mine),
            "seconds": _spread([r["seconds"] for r in mine]),
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


def figure(runs: list[dict[str, Any]], task: Task, path: Path) -> None:
    """Training loss, gradient norm, masked share per step: one line per rule (seeds' mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(task.settings, plt.rcParams["axes.prop_cycle"].by_key()["color"],
                       strict=False))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = (("loss", f"training loss: {task.loss}", False),
              ("grad_norm", "‖∂L/∂θ‖ over the energy's parameters (log scale)", True),
              ("masked_share", "share of the step's solves masked (not converged)", False))
    for ax, (key, title, log) in zip(axes, panels, strict=True):
        for name in task.settings:
            mine = [r for r in runs if r["setting"] == name]
            if mine:
                style = ":" if name == "unrolled" else "--" if name == task.reference else "-"
                steps, values = _mean_curve(mine, key)
                ax.plot(steps, values, style, color=colours[name], lw=1.5, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(f"training step ({task.step})")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{task.title[0].upper()}{task.title[1:]} recipe trained with each backward "
                 "rule (mean over seeds, 10-step moving mean)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _final(result: dict[str, Any], setting: str, seed: int, key: str) -> float:
    (run,) = [r for r in result["runs"] if r["setting"] == setting and r["seed"] == seed]
    return float(run["curves"]["val"][key])


def _digits(metric: Metric) -> int:
    return 1 if metric.unit == "mm" else 3


def _pm(values: list[float], digits: int = 1) -> str:
    return f"{values[0]:.{digits}f} ± {values[1]:.{digits}f}"


def _answer(result: dict[str, Any], task: Task) -> list[str]:
    """The Answer's bullets: every rule against the reference, by metric and per seed."""
    table, ref = result["summary"], task.reference
    lines = []
    if ref in table:
        lines.append(f"- **{ref}** reached " + ", ".join(
            f"{m.label} {_pm(table[ref][f'val_{m.key}'], _digits(m))} {m.unit}".rstrip()
            for m in task.metrics) + ".")
        first = task.metrics[0]
        for name, st in table.items():
            if name == ref:
                continue
            parts = []
            for m in task.metrics:
                key, digits = f"val_{m.key}", _digits(m)
                gap = st[key][0] - table[ref][key][0]
                noise = 2 * max(st[key][1], table[ref][key][1])
                unit = f" {m.unit}" if m.unit else ""
                parts.append(f"{m.label} {gap:+.{digits}f}{unit} "
                             + ("(within" if abs(gap) <= noise else "(outside")
                             + f" twice the seed spread, {noise:.{digits}f}{unit})")
            paired = [_final(result, name, s, first.key) - _final(result, ref, s, first.key)
                      for s in result["seeds"]]
            parts.append(f"per seed (same start and batches) {first.label} "
                         + ", ".join(f"{d:+.{_digits(first) + 1}f}" for d in paired)
                         + (f" {first.unit}" if first.unit else ""))
            lines.append(f"- **{name}** against {ref}: {'; '.join(parts)}; masked "
                         f"{st['masked_share']:.1%} against {table[ref]['masked_share']:.1%}; "
                         f"{st['seconds'][0] / table[ref]['seconds'][0]:.2f} × its time.")
    if {"λ = 0", "unrolled"} <= set(table):
        key = task.metrics[0].key
        apart = max(abs(_final(result, "unrolled", s, key) - _final(result, "λ = 0", s, key))
                    for s in result["seeds"])
        unit = f" {task.metrics[0].unit}" if task.metrics[0].unit else ""
        lines.append(f"- **Unrolled and λ = 0** (both the exact derivative once the solve has "
                     f"converged) ended within {apart:.2g}{unit} of each other in "
                     f"{task.metrics[0].label} on every seed.")
    norms = [v for r in result["runs"] for v in r["curves"]["grad_norm"]["value"]]
    medians = [st["median_grad_norm"] for st in table.values()]
    lines.append(f"- Every run's gradient stayed "
                 f"{'finite' if all(map(math.isfinite, norms)) else 'NOT finite'}; the largest "
                 f"norm of any step was {max(norms):.3g} (per rule medians "
                 f"{min(medians):.3g}–{max(medians):.3g}).")
    return lines


def page(result: dict[str, Any], task: Task, command: str) -> str:
    """The Markdown page: the answer with its numbers, the table, the figure, the command."""
    table = result["summary"]
    heads = " | ".join(f"val {m.label}" + (f" ({m.unit})" if m.unit else "")
                       for m in task.metrics)
    rows = "\n".join(
        f"| {name} | "
        + " | ".join(_pm(s[f"val_{m.key}"], _digits(m)) for m in task.metrics)
        + f" | {s['final_loss'][0]:.3g} ± {s['final_loss'][1]:.2g} | {s['median_grad_norm']:.3g} | "
        f"{s['max_grad_norm'][0]:.3g}–{s['max_grad_norm'][1]:.3g} | {s['masked_share']:.1%} "
        f"(≤ {s['max_masked_share']:.1%}) | {_pm(s['seconds'], 0)} |"
        for name, s in table.items())
    columns = "|---" * (len(task.metrics) + 6) + "|"
    seeds = ", ".join(map(str, result["seeds"]))
    answer = "\n".join(_answer(result, task))
    intro = textwrap.fill(
        f"Part 4 of the [assumption study](index.md) on the real task. {task.intro} Seeds "
        f"{seeds}: the same seed gives every rule the same initial parameters and batches. The "
        "values are those every recipe run logs, here every step to CSV.", 96)
    loss = textwrap.fill(
        f"Mean ± standard deviation over seeds; validation after the last step. Training loss: "
        f"{task.loss}, mean of the last 20 steps. ‖∂L/∂θ‖: the 2-norm of the loss's gradient "
        "over every energy parameter before each optimizer step (median over all steps and "
        "seeds; range over seeds of each run's largest). Masked: the share of the training "
        "solves left without a gradient because the solve had not converged (mean over steps; "
        "largest step).", 96)
    return f"""# Study, {task.title}: training with each backward rule (part 4)

{intro}

## Answer

{answer}

## Table

{loss}

| backward rule | {heads} | train loss | ‖∂L/∂θ‖ median | largest | masked | seconds per run |
{columns}
{rows}

![Training curves per backward rule]({task.name}.png)

*x: training step ({task.step}). Left: the training loss; middle: the norm of the energy
parameters' gradient; right: the share of the step's solves masked for not converging. One line
per backward rule: the mean over seeds, then a moving mean over 10 steps. Where rules agree
their lines lie on each other ({task.reference} dashed, unrolled dotted).*

## Protocol

{task.protocol}
- **Hardware**: the 2-core development VM, one thread per run, {result.get("workers", 2)} runs at a
  time.

{command_section(command, task.name)}"""


def main(argv: list[str] | None, task: Task, doc: str) -> dict[str, Any]:
    """Train every rule for every seed, read the logs, write the figure, numbers and page."""
    parser = study_parser(doc, task.name, replot=True)
    parser.add_argument("--settings", nargs="+", default=list(task.settings),
                        choices=list(task.settings))
    args, overrides = parser.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    command = (f"OMP_NUM_THREADS=1 python -m studies.assumptions.{task.name} --out {args.out}"
               + (f" --seeds {' '.join(map(str, args.seeds))}" if args.seeds != [0, 1, 2]
                  else ""))
    if args.replot:
        result = json.loads((args.out / f"{task.name}.json").read_text())
    else:
        jobs = [(name, seed) for name in args.settings for seed in args.seeds]
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            futures = {job: pool.submit(fit, job[1], task.fold, args.runs / _slug(*job),
                                        [*task.settings[job[0]], *task.overrides, *overrides],
                                        list(task.recipes))
                       for job in jobs}
            done = {job: future.result() for job, future in futures.items()}
        runs = [{"setting": name, "seed": seed, "seconds": done[name, seed]["seconds"],
                 "curves": curves(done[name, seed]["rows"], task.metrics)}
                for name, seed in jobs]
        result = {"seeds": args.seeds, "workers": args.workers, "summary": summary(runs, task),
                  "runs": runs}
        (args.out / f"{task.name}.json").write_text(json.dumps(result, indent=1))
    figure(result["runs"], task, args.out / f"{task.name}.png")
    (args.out / f"{task.name}.md").write_text(page(result, task, command))
    return result


def _slug(setting: str, seed: int) -> str:
    name = setting.split(" (")[0].replace("λ = ", "lambda_")
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-.") else "_" for ch in name)
    return f"{safe}-seed{seed}"
