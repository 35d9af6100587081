"""Training a recipe from a study: fits per seed, what they logged, the figure of it.

The studies compose the recipes' own classes (task, DataModule, Trainer) through the same
``LightningCLI`` as ``lightning-energy fit``, with a CSV logger in place of wandb, so every
value they plot is one that every recipe run logs.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any


def study_parser(doc: str, name: str, replot: bool = False) -> argparse.ArgumentParser:
    """The options every study driver takes: ``--out``, ``--runs``, ``--seeds``, ``--workers``.

    With ``replot``, also ``--replot``: redraw the figure and page from ``--out``'s
    ``{name}.json``. Arguments a driver does not know go to ``lightning-energy fit``
    (``parse_known_args``).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/study"))
    parser.add_argument("--runs", type=Path, default=Path("runs/study") / name)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2, help="runs at once (one thread each)")
    if replot:
        parser.add_argument("--replot", action="store_true",
                            help=f"redraw the figure and page from --out's {name}.json")
    return parser


def trajectory_study(argv: list[str] | None, doc: str, name: str, recipe: str | list[str],
                     fold: str, columns: dict[str, str], validation: str, title: str,
                     page: Callable[[dict[str, Any], str], str], xlabel: str,
                     overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Part 6 on a recipe: train every seed, plot ``columns`` over training, write the page.

    Writes ``{name}.json``, ``.png`` and ``.md`` to ``--out``; ``page(result, command)`` makes
    the Markdown. ``overrides`` go before the command line's own arguments to ``fit``.
    """
    parser = study_parser(doc, name)
    parser.add_argument("--fold", default=fold)
    args, rest = parser.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = train_seeds(args, [*overrides, *rest], recipe, args.fold, columns, validation)
    figure(runs, f"{title} (fold {args.fold})", args.out / f"{name}.png", columns, xlabel)
    result = {"fold": args.fold, **numbers(runs, columns, validation)}
    result["series"] = {r["seed"]: r["series"] for r in runs}
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
    command = (f"OMP_NUM_THREADS=1 python -m studies.assumptions.{name} --out {args.out}"
               + (f" --seeds {' '.join(map(str, args.seeds))}" if args.seeds != [0, 1, 2]
                  else ""))
    (args.out / f"{name}.md").write_text(page(result, command))
    return result


def command_section(command: str, name: str) -> str:
    """A study page's last section: the command that regenerates it and what it writes."""
    return (f"## Command\n\n```bash\n{command}\n```\n\nIt writes `{name}.json`, `.png` and "
            f"this page (runs under `runs/study/{name}`).\n")


def train_seeds(args: argparse.Namespace, overrides: list[str], recipe: str | list[str],
                fold: str | None, columns: dict[str, str],
                validation: str) -> list[dict[str, Any]]:
    """Fit ``recipe`` for every seed of ``args`` (``args.workers`` at a time).

    Returns each run's seed, seconds and :func:`series` of ``columns`` and ``validation``.
    """
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(fit, s, fold, args.runs / f"seed-{s}", overrides, recipe)
                   for s in args.seeds]
        runs = [f.result() for f in futures]
    for run in runs:
        run["series"] = series(run.pop("rows"), columns, validation)
    return runs


def fit(seed: int, fold: str | None, run_dir: Path, overrides: list[str],
        recipe: str | list[str]) -> dict[str, Any]:
    """Train a recipe for one seed; its logged rows and the seconds it took.

    ``fold``: the recipe's ``--data.init_args.fold`` (for the pose recipe the held-out subject
    of a leave-one-subject-out fold, validation then the fold's first training subject), or None
    for the recipe's own split (pose: validation S8). ``recipe``: a recipe, or several applied
    in order (a recipe and its overlays).
    """
    import torch

    from lightning_energy.cli import run_cli

    torch.set_num_threads(1)
    logger = json.dumps({"class_path": "pytorch_lightning.loggers.CSVLogger",
                         "init_args": {"save_dir": str(run_dir), "name": "", "version": ""}})
    start = time.perf_counter()
    split = [] if fold is None else ["--data.init_args.fold", fold]
    configs = [item for path in ([recipe] if isinstance(recipe, str) else recipe)
               for item in ("--config", path)]
    run_cli(["fit", *configs, *split,
             "--seed_everything", str(seed), "--data.init_args.seed", str(seed),
             "--trainer.default_root_dir", str(run_dir), "--trainer.logger", logger,
             "--trainer.enable_progress_bar", "false", *overrides])
    seconds = time.perf_counter() - start
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {"seed": seed, "seconds": seconds, "rows": rows}


def series(rows: list[dict[str, str]], columns: dict[str, str],
           validation: str) -> dict[str, Any]:
    """The steps and values where each column was logged, and the ``validation`` metric's.

    ``columns``: panel title → logged column.
    """
    out: dict[str, Any] = {}
    for title, name in {**columns, validation: validation}.items():
        values = column(rows, name)
        out[title] = {"step": list(values), "value": list(values.values())}
    return out


def column(rows: list[dict[str, str]], name: str) -> dict[int, float]:
    """Step → value of one logged column, in the order logged (steps where it was logged)."""
    return {int(r["step"]): float(r[name]) for r in rows if r.get(name)}


def figure(runs: list[dict[str, Any]], title: str, path: Path, columns: dict[str, str],
           xlabel: str) -> None:
    """One panel per logged parameter (six ``columns``), one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, title_ in zip(axes.flat, columns, strict=True):
        for run in runs:
            s = run["series"][title_]
            ax.plot(s["step"], s["value"], label=f"seed {run['seed']}")
        ax.set_title(title_, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def numbers(runs: list[dict[str, Any]], columns: dict[str, str],
            validation: str) -> dict[str, Any]:
    """First and last value of every series per seed, and of the validation metric."""
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs],
                           "seconds": [round(r["seconds"], 1) for r in runs]}
    for title in [*columns, validation]:
        out[title] = [{"first": r["series"][title]["value"][0],
                       "last": r["series"][title]["value"][-1]}
                      for r in runs if r["series"][title]["value"]]
    return out
