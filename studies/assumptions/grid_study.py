"""Part 5 of the study on a recipe: learned energy weights against grid search, equal accuracy.

A :class:`GridTask` names the recipe, the two settings a grid searches (:class:`Axis`), what
the learned runs learn, the metric and the page's prose; :func:`main` runs, through
``lightning-energy cv`` (the recipe's own classes and Trainer), G × G log-spaced grids of the
untrained energy (each point scored on training data, the best tested) for several G, and the
recipe trained from its own start for several seeds, every job tested on the fold's held-out
data. Where a seed also draws the split (``grid_per_seed``), every grid runs once per seed and
the comparison is paired by split. The drivers are ``pose_grid`` and ``tracking_grid``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from studies.assumptions.backward_rules import Metric
from studies.assumptions.recipe_runs import command_section, study_parser


@dataclass(frozen=True)
class Axis:
    """One setting the grid searches.

    Its ``cv --grid`` key, name, log-spaced range and the recipe's value (where the learned runs
    start); ``state`` is the suffix of the checkpoint entry holding its logarithm once learned,
    or None where it is not a parameter.
    """

    key: str
    name: str
    bounds: tuple[float, float]
    start: float
    state: str | None


@dataclass(frozen=True)
class GridTask:
    """What part 5 needs to know of a recipe."""

    name: str  # the module, and the stem of its json, png and md
    title: str  # the page's title after "Study, "
    recipes: tuple[str, ...]  # a recipe and its overlays
    fold: str
    axes: tuple[Axis, Axis]
    metric: Metric  # tested; the comparison's
    second: Metric  # tested too, in the table
    select: dict[str, str]  # the grid's monitor, mode and split (``cv --grid``)
    overrides: tuple[str, ...]  # for every job
    learn: tuple[str, ...]  # the learned runs' overrides
    grid_per_seed: bool  # a seed draws the split: grids run per seed, compared per split
    intro: str  # the page's first paragraph
    beyond: str  # where learning pays: the full recipe's result
    protocol: str  # the page's protocol bullets


def geomspace(bounds: tuple[float, float], size: int) -> list[float]:
    """``size`` log-spaced values over ``bounds``, 4 significant digits."""
    return [float(f"{v:.4g}") for v in np.geomspace(*bounds, size)]


def grid_file(task: GridTask, size: int, folder: Path) -> Path:
    """A ``cv --grid`` file of ``size`` × ``size`` points over the two axes."""
    spec = {"grid": {axis.key: geomspace(axis.bounds, size) for axis in task.axes},
            **task.select}
    path = folder / f"grid{size}.json"  # JSON is YAML
    path.write_text(json.dumps(spec))
    return path


def run_cv(arguments: list[str]) -> dict[str, Any]:
    """``lightning-energy cv`` with ``arguments`` in this process (one thread); its record."""
    import torch

    from lightning_energy.crossval import main as cross_validate

    torch.set_num_threads(1)
    cross_validate(arguments)
    out = Path(arguments[arguments.index("--out") + 1])
    return json.loads(next(out.glob("*.json")).read_text())


def jobs(task: GridTask, args: Any, folder: Path) -> dict[tuple[str, int, int], list[str]]:
    """(kind, G, seed) → the job's ``cv`` arguments; G is 0 for the learned runs."""
    configs = [item for path in task.recipes for item in ("--config", path)]
    common = [*configs, "--folds", task.fold, *task.overrides, "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false"]
    out: dict[tuple[str, int, int], list[str]] = {}
    for g in sorted(args.grids):
        for seed in args.seeds if task.grid_per_seed else args.seeds[:1]:
            out["grid", g, seed] = [*common, "--seeds", str(seed), "--grid",
                                    str(grid_file(task, g, folder)), "--no-fit",
                                    "--out", str(args.runs / f"grid{g}-seed{seed}")]
    for seed in args.seeds:
        out["learned", 0, seed] = [*common, "--seeds", str(seed), *task.learn,
                                   "--out", str(args.runs / f"learned-seed{seed}")]
    return out


def _row(task: GridTask, kind: str, size: int, seed: int, record: dict[str, Any],
         runs: Path) -> dict[str, Any]:
    test = record["test"]
    row: dict[str, Any] = {"kind": kind, "size": size, "seed": seed,
                           task.metric.key: test[f"test/{task.metric.key}"],
                           task.second.key: test[f"test/{task.second.key}"]}
    if kind == "grid":
        row.update(points=len(record["grid"]), seconds=record["grid_seconds"],
                   values={a.name: record["grid_start"][a.key] for a in task.axes})
    else:
        row.update(points=None, seconds=record["fit_seconds"],
                   values=learned_values(task, runs / f"learned-seed{seed}"))
    return row


def learned_values(task: GridTask, run: Path) -> dict[str, float]:
    """The axes' values of the state a learned run was tested with; {} without a checkpoint.

    That is ``best.ckpt`` where the recipe keeps its best validation state
    (:class:`~lightning_energy.callbacks.BestOnValidation`), else ``last.ckpt``.
    """
    import torch

    ckpt = next(run.rglob("best.ckpt"), None) or next(run.rglob("last.ckpt"), None)
    if ckpt is None:
        return {}
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    values = {}
    for axis in [a for a in task.axes if a.state]:
        keys = [key for key in state if key.endswith(axis.state)]
        if len(keys) != 1:
            raise KeyError(f"{ckpt}: expected one entry ending in {axis.state!r}, got {keys}.")
        values[axis.name] = float(state[keys[0]].exp())
    return values


def _mean_std(values: list[float]) -> list[float]:
    return [statistics.fmean(values), statistics.pstdev(values)]


def summarise(task: GridTask, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per grid size and for the learned runs: the metric over seeds, points, seconds.

    Per grid size also the paired difference learned − grid over the splits both ran on.
    """
    key = task.metric.key
    learned = {r["seed"]: r for r in rows if r["kind"] == "learned"}
    out: dict[str, Any] = {"rows": rows, "grids": {}}
    if learned:
        out["learned"] = {k: _mean_std([r[k] for r in learned.values()])
                          for k in (key, task.second.key, "seconds")}
    for size in sorted({r["size"] for r in rows if r["kind"] == "grid"}):
        mine = [r for r in rows if r["kind"] == "grid" and r["size"] == size]
        entry = {k: _mean_std([r[k] for r in mine]) for k in (key, task.second.key, "seconds")}
        entry["points"] = mine[0]["points"]
        paired = [learned[r["seed"]][key] - r[key] for r in mine if r["seed"] in learned]
        if task.grid_per_seed and paired:
            entry["learned_minus_grid"] = paired
        out["grids"][str(size)] = entry
    return out


def figure(task: GridTask, summary: dict[str, Any], path: Path) -> None:
    """The metric against grid points and against seconds; the learned runs as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, grids = task.metric.key, summary["grids"]
    sizes = list(grids)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, axis_key, label in ((axes[0], "points", "grid points (untrained energy, each "
                                                    "scored on training data)"),
                                (axes[1], "seconds", "seconds (one CPU thread)")):
        xs = [grids[s]["points"] if axis_key == "points" else grids[s]["seconds"][0]
              for s in sizes]
        ax.errorbar(xs, [grids[s][key][0] for s in sizes], [grids[s][key][1] for s in sizes],
                    marker="o", capsize=3, label="grid search: best point, tested")
        if "learned" in summary:
            mean, std = summary["learned"][key]
            ax.axhspan(mean - std, mean + std, alpha=0.25, color="C1",
                       label="learned (mean ± std over seeds)")
            ax.axhline(mean, color="C1")
            if axis_key == "seconds":
                ax.axvline(summary["learned"]["seconds"][0], color="C1", ls="--",
                           label="learned: seconds of training")
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:.0f}" for x in xs])  # the runs' own values, not decades
        ax.minorticks_off()
        ax.set_xlabel(label)
        unit = f" ({task.metric.unit})" if task.metric.unit else ""
        ax.set_ylabel(f"test {task.metric.label}{unit}")
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.legend(fontsize=8)
    names = " and ".join(a.name for a in task.axes)
    fig.suptitle(f"{names}: learned against grid search (fold {task.fold})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(task: GridTask, value: float) -> str:
    return f"{value:.1f}" if task.metric.unit == "mm" else f"{value:.3f}"


def _unit(task: GridTask) -> str:
    return f" {task.metric.unit}" if task.metric.unit else ""


def _verdict(task: GridTask, grid: float, mean: float, std: float) -> str:
    sign = 1 if task.metric.higher_is_better else -1
    if sign * (grid - mean) > std:
        return "beats"
    return "matches" if sign * (grid - mean) >= -std else "does not match"


def _values(values: dict[str, float]) -> str:
    return ", ".join(f"{k} = {v:.3g}" for k, v in values.items()) if values else "–"


def answer(task: GridTask, summary: dict[str, Any]) -> list[str]:
    """The page's answer: each grid against the learned runs; where the choices fell."""
    key, lines = task.metric.key, []
    learned = summary.get("learned")
    for size, grid in summary["grids"].items():
        if learned is None:
            break
        mean, std = learned[key]
        seeds = " (mean over the splits)" if task.grid_per_seed else ""
        line = (f"- **grid {size}×{size}** ({grid['points']} points, "
                f"{grid['seconds'][0]:.0f} s): {_fmt(task, grid[key][0])}{_unit(task)}{seeds}, "
                f"{_verdict(task, grid[key][0], mean, std)} the learned "
                f"{_fmt(task, mean)} ± {_fmt(task, std)}{_unit(task)} "
                f"({learned['seconds'][0]:.0f} s of training)")
        if "learned_minus_grid" in grid:
            diffs = grid["learned_minus_grid"]
            signed = "{:+.1f}" if task.metric.unit == "mm" else "{:+.3f}"
            line += (f"; learned − grid per split: {', '.join(signed.format(d) for d in diffs)}"
                     f" (mean {signed.format(statistics.fmean(diffs))})")
        chosen = [r["values"] for r in summary["rows"]
                  if r["kind"] == "grid" and str(r["size"]) == size]
        edges = [a.name for a in task.axes if any(v[a.name] in a.bounds for v in chosen)]
        if edges:
            line += f"; its choice of {' and '.join(edges)} fell on the edge of the range"
        lines.append(line + ".")
    ended = [r["values"] for r in summary["rows"] if r["kind"] == "learned" and r["values"]]
    if ended:
        names = [a.name for a in task.axes if a.state]
        starts = " and ".join(f"{a.start:g}" for a in task.axes if a.state)
        lines.append("- The learned runs' tested states had " + ", ".join(
            f"{n} = {min(v[n] for v in ended):.3g}–{max(v[n] for v in ended):.3g}"
            for n in names) + f" (started at {starts}).")
    return lines


def table(task: GridTask, summary: dict[str, Any]) -> list[str]:
    """One row per job."""
    names = ", ".join(a.name for a in task.axes)
    unit = f" ({task.metric.unit})" if task.metric.unit else ""
    lines = [f"| run | seed | test {task.metric.label}{unit} | test {task.second.label}{unit} | "
             f"grid points | seconds | {names} chosen/learned |", "|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        name = f"grid {r['size']}×{r['size']}" if r["kind"] == "grid" else "learned"
        points = r["points"] if r["points"] is not None else "–"
        lines.append(f"| {name} | {r['seed']} | {_fmt(task, r[task.metric.key])} | "
                     f"{_fmt(task, r[task.second.key])} | {points} | {r['seconds']:.0f} | "
                     f"{_values(r['values'])} |")
    return lines


def page(task: GridTask, result: dict[str, Any], command: str) -> str:
    """The Markdown page: the answer with its numbers, the table, the figure, the command."""
    summary = result["summary"]
    lines = [f"# Study, {task.title}: learned weights against grid search (part 5)", "",
             task.intro, "", "## Answer", "", *answer(task, summary), "", task.beyond, "",
             "## Table", "", *table(task, summary), "",
             f"![Learned against grid search]({task.name}.png)", "",
             f"*Test {task.metric.label} of each grid's best point against the number of points "
             "(left) and the seconds the search took (right)"
             + (", mean ± std over the splits" if task.grid_per_seed else "")
             + "; the band: the learned runs' mean ± std, the dashed line their training "
             "time.*", "", "## Protocol", "", task.protocol,
             f"- **Hardware**: the 2-core development VM, one thread per job, "
             f"{result.get('workers', 2)} jobs at a time.", "",
             command_section(command, task.name)]
    return "\n".join(lines)


def main(argv: list[str] | None, task: GridTask, doc: str) -> dict[str, Any]:
    """Run every job, read the records, write the figure, numbers and page."""
    parser = study_parser(doc, task.name, replot=True)
    parser.add_argument("--grids", type=int, nargs="+", default=[3, 5, 9])
    args, overrides = parser.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    command = f"OMP_NUM_THREADS=1 python -m studies.assumptions.{task.name} --out {args.out}"
    path = args.out / task.name
    if args.replot:
        result = json.loads(path.with_suffix(".json").read_text())
    else:
        with tempfile.TemporaryDirectory() as folder:
            todo = jobs(task, args, Path(folder))
            order = sorted(todo, key=lambda job: -job[1])  # the largest grids take longest
            with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
                futures = {job: pool.submit(run_cv, [*todo[job], *overrides]) for job in order}
                rows = [_row(task, *job, futures[job].result(), args.runs) for job in todo]
        result = {"fold": task.fold, "workers": args.workers,
                  "summary": summarise(task, rows)}
        path.with_suffix(".json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    figure(task, result["summary"], path.with_suffix(".png"))
    path.with_suffix(".md").write_text(page(task, result, command))
    return result
