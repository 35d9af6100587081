"""``lightning-energy cv``: cross-validate a recipe through the Lightning Trainer, and tabulate.

For every fold (and seed) the recipe's own classes are built by the same ``LightningCLI`` as
``lightning-energy fit``, with ``--data.init_args.fold F`` (and ``--seed_everything S
--data.init_args.seed S``); then, optionally, a grid search over settings chooses the start by a
validation metric, ``trainer.fit`` trains, and ``trainer.test`` scores the held-out fold. One
JSON record per run is written to ``--out``, and a Markdown table of mean ± std over the runs
(every baseline the task or its callbacks log under ``test/baseline/…`` on its own row).

A cross-validation is a command, not a script of its own, so that the published tables come
from exactly the classes a user trains with (recipes, DataModules, callbacks, Trainer).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml

from lightning_energy.callbacks.selection import BestOnValidation

GRID_CALLBACK_PREFIX = "callbacks."
"""Grid keys ``callbacks.<Class>.<attribute>`` set an attribute of the recipe's callback."""


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Cv's own options, and the remaining arguments for ``LightningCLI``."""
    parser = argparse.ArgumentParser(
        prog="lightning-energy cv",
        description="Cross-validate a recipe: fit and test it on every fold, write one JSON "
                    "record per run and a Markdown table. Other arguments (--config, "
                    "--trainer.*, --model.*, --data.*) go to the recipe's LightningCLI.")
    parser.add_argument("--folds", nargs="+", default=None,
                        help="values of --data.init_args.fold, e.g. 0 1 2 3 4 or S1 S5 S6 S7 S8")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="seed_everything and data seed of each repetition")
    parser.add_argument("--grid", default=None, metavar="YAML",
                        help="grid search before training: a YAML file with `grid` (key → "
                             "values), `monitor`, `mode` (max/min) and `split` (val/train)")
    parser.add_argument("--no-fit", action="store_true",
                        help="test the recipe as built (or the grid winner), without training")
    parser.add_argument("--name", default=None,
                        help="row name in tables (default: --out's name); with --table, the "
                             "one name under which the energy's records of every folder are "
                             "pooled (runs of one setting made apart, e.g. one seed each)")
    parser.add_argument("--out", default=None, help="folder of the JSON records and table.md")
    parser.add_argument("--table", nargs="+", default=None, metavar="DIR",
                        help="only print the table of the records in these folders")
    parser.add_argument("--metrics", nargs="+", default=None,
                        help="columns of the table (default: the task's test metrics)")
    options, rest = parser.parse_known_args(list(argv))
    if options.table is None and (options.folds is None or options.out is None):
        parser.error("give --folds and --out to run, or --table DIR ... to tabulate")
    return options, rest


def main(argv: Sequence[str]) -> str:
    """Run the cross-validation (or only tabulate); returns the Markdown table."""
    options, rest = parse_args(argv)
    if options.table is not None:
        records = load_records(options.table)
        if options.name:
            records = [{**record, "name": options.name} for record in records]
        return table(records, options.metrics)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    name = options.name or out.name
    grid = load_grid(options.grid) if options.grid else None
    records = []
    for seed, fold in itertools.product(options.seeds, options.folds):
        record = run_fold(rest, fold, seed, out / f"fold-{fold}_seed-{seed}", grid,
                          fit=not options.no_fit)
        record["name"] = name
        (out / f"fold-{fold}_seed-{seed}.json").write_text(json.dumps(record, indent=1))
        records.append(record)
    text = table(records, options.metrics)
    (out / "table.md").write_text(text + "\n")
    return text


def load_grid(path: str) -> dict[str, Any]:
    """A grid file: ``grid`` (key → list of values), ``monitor``, ``mode``, ``split``."""
    spec = yaml.safe_load(Path(path).read_text())
    if not isinstance(spec, dict) or not isinstance(spec.get("grid"), dict) or not spec["grid"]:
        raise ValueError(f"Expected {path} to hold a non-empty mapping `grid: {{key: [values]}}`.")
    for key in ("monitor", "mode"):
        if key not in spec:
            raise ValueError(f"Expected `{key}` in grid file {path}.")
    if spec["mode"] not in ("max", "min") or spec.get("split", "val") not in ("val", "train"):
        raise ValueError(f"Expected `mode` max/min and `split` val/train in {path}, got "
                         f"{spec['mode']!r} and {spec.get('split')!r}.")
    spec.setdefault("split", "val")
    return spec


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as key → value."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(
        *(grid[k] for k in keys))]


def run_fold(cli_args: list[str], fold: str, seed: int, root: Path,
             grid: dict[str, Any] | None, fit: bool) -> dict[str, Any]:
    """Grid search (optional), fit (optional) and test of one fold; returns the run's record."""
    base = [*cli_args, "--data.init_args.fold", str(fold), "--seed_everything", str(seed),
            "--data.init_args.seed", str(seed), "--trainer.default_root_dir", str(root)]
    record: dict[str, Any] = {"fold": fold, "seed": seed, "fit": fit, "arguments": base,
                              "machine": machine()}
    start: dict[str, Any] = {}
    if grid is not None:
        began = time.perf_counter()
        start, record["grid"] = grid_search(base, grid)
        record["grid_seconds"] = time.perf_counter() - began
        record["grid_start"] = start
        if fit:  # the grid winner untrained, tested like the learned energy
            record["grid_test"] = test_only(base, start)
    cli = build(base, start)
    began = time.perf_counter()
    if fit:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    record["fit_seconds"] = time.perf_counter() - began
    record["selection"] = selection_summary(cli.trainer)
    began = time.perf_counter()
    record["test"] = scalars(cli.trainer.test(cli.model, datamodule=cli.datamodule,
                                              verbose=False)[0])
    record["test_seconds"] = time.perf_counter() - began
    return record


def selection_summary(trainer: Any) -> dict[str, Any] | None:
    """What :class:`~lightning_energy.callbacks.BestOnValidation` chose, if the recipe has it."""
    for callback in trainer.callbacks:
        if isinstance(callback, BestOnValidation):
            return {"monitor": callback.monitor, "best_step": callback.best_step,
                    "best_score": callback.best_score, "history": callback.history}
    return None


def build(args: list[str], point: dict[str, Any], quiet: bool = False) -> Any:
    """The recipe's trainer, model and datamodule (``LightningCLI`` with ``run=False``)."""
    from lightning_energy.cli import run_cli

    overrides = [item for key, value in point.items() if not key.startswith(GRID_CALLBACK_PREFIX)
                 for item in (f"--{key}", json.dumps(value))]
    if quiet:
        overrides += ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                      "--trainer.enable_model_summary", "false"]
    cli = run_cli([*args, *overrides], run=False)
    for key, value in point.items():
        if key.startswith(GRID_CALLBACK_PREFIX):
            set_callback_attribute(cli.trainer, key[len(GRID_CALLBACK_PREFIX):], value)
    return cli


def set_callback_attribute(trainer: Any, path: str, value: Any) -> None:
    """Set ``<Class>.<attribute>`` on the trainer's callback of that class."""
    class_name, _, attribute = path.partition(".")
    matches = [c for c in trainer.callbacks if type(c).__name__ == class_name]
    if len(matches) != 1 or not hasattr(matches[0], attribute):
        present = [type(c).__name__ for c in trainer.callbacks]
        raise ValueError(f"Grid key callbacks.{path}: expected one {class_name} callback with "
                         f"attribute {attribute!r}; the recipe's callbacks are {present}.")
    setattr(matches[0], attribute, value)


def grid_search(args: list[str], grid: dict[str, Any]) -> tuple[dict[str, Any], list[dict]]:
    """Validate every grid point untrained; the best point (first on ties) and every score."""
    rows: list[dict[str, Any]] = []
    for point in grid_points(grid["grid"]):
        cli = build(args, point, quiet=True)
        datamodule = cli.datamodule
        if grid["split"] != "val":
            datamodule = SplitAsValidation(datamodule, grid["split"])
        metrics = cli.trainer.validate(cli.model, datamodule=datamodule, verbose=False)[0]
        if grid["monitor"] not in metrics:
            raise KeyError(f"Grid `monitor` {grid['monitor']!r} was not logged; logged: "
                           f"{sorted(metrics)}.")
        rows.append({"point": point, "score": float(metrics[grid["monitor"]])})
    sign = 1.0 if grid["mode"] == "max" else -1.0
    best = max(rows, key=lambda row: sign * row["score"])  # max() keeps the first of ties
    return best["point"], rows


class SplitAsValidation(pl.LightningDataModule):
    """A datamodule whose validation loader serves another of its splits (``eval_dataloader``).

    Everything else (``setup``, ``sequences``, ``poses``, …) is the wrapped datamodule's, so
    callbacks that read the training split see the same data.
    """

    def __init__(self, datamodule: Any, split: str) -> None:
        super().__init__()
        if not callable(getattr(datamodule, "eval_dataloader", None)):
            raise TypeError(f"A grid `split` other than 'val' needs a datamodule with "
                            f"eval_dataloader(split), got {type(datamodule).__name__}.")
        self.inner, self.split = datamodule, split

    def __getattr__(self, name: str) -> Any:
        if name in ("inner", "split"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def setup(self, stage: str) -> None:  # noqa: D102
        self.inner.setup(stage)

    def val_dataloader(self) -> Any:  # noqa: D102
        return self.inner.eval_dataloader(self.split)


def test_only(args: list[str], point: dict[str, Any]) -> dict[str, float]:
    """Test metrics of the recipe at ``point`` without training."""
    cli = build(args, point, quiet=True)
    return scalars(cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0])


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """Logged metrics as plain floats."""
    return {k: float(v) for k, v in metrics.items()}


def machine() -> dict[str, Any]:
    """What ran the fold: processor, threads, torch, and the GPU if one was used."""
    info: dict[str, Any] = {"processor": platform.processor() or platform.machine(),
                            "threads": torch.get_num_threads(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load_records(folders: Sequence[str]) -> list[dict[str, Any]]:
    """Every ``*.json`` record in ``folders``."""
    records = []
    for folder in folders:
        paths = sorted(Path(folder).glob("*.json"))
        if not paths:
            raise FileNotFoundError(f"No cv records (*.json) in {folder}.")
        records += [json.loads(path.read_text()) for path in paths]
    return records


def rows_of(record: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Row name → metric → value: the energy, its grid start, and every logged baseline."""
    # The energy first, then its grid-search start, then the baselines.
    rows: dict[str, dict[str, float]] = {record["name"]: {}}
    for source, label in (("grid_test", f"{record['name']}: grid-search start"),
                          ("test", record["name"])):
        for key, value in record.get(source, {}).items():
            parts = key.split("/")
            if parts[:2] == ["test", "baseline"] and len(parts) >= 4:
                rows.setdefault("/".join(parts[2:-1]), {})[parts[-1]] = value
            elif len(parts) == 2 or parts[1] == "solver":
                rows.setdefault(label, {})["/".join(parts[1:])] = value
    if record.get("fit", True):
        rows.setdefault(record["name"], {})["fit_seconds"] = record["fit_seconds"]
    return rows


def table(records: list[dict[str, Any]], metrics: Sequence[str] | None = None) -> str:
    """Mean ± std over runs of each row's metrics, as Markdown."""
    values: dict[str, dict[str, list[float]]] = {}
    seen: set[tuple[str, str, int]] = set()
    for record in records:
        for row, scores in rows_of(record).items():
            run = (row, str(record["fold"]), int(record["seed"]))
            if run in seen:  # a baseline every record of a fold reports: count it once
                continue
            seen.add(run)
            for metric, value in scores.items():
                values.setdefault(row, {}).setdefault(metric, []).append(value)
    if metrics is None:
        found = {m for scores in values.values() for m in scores}
        metrics = sorted(m for m in found if m not in ("loss", "fit_seconds")
                         and not m.startswith("solver/"))
    columns = [*metrics, "solver/converged", "fit_seconds"]
    lines = ["| method | " + " | ".join(columns) + " | runs |",
             "|---" * (len(columns) + 2) + "|"]
    for row, series in values.items():
        cells = [_cell(series.get(column)) for column in columns]
        runs = max(len(v) for v in series.values())
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {runs} |")
    return "\n".join(lines)


def _cell(values: list[float] | None) -> str:
    """Mean ± population std; 3 decimals for scores below 10, 1 for larger (mm, seconds)."""
    if not values:
        return "–"
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    digits = 3 if abs(mean) < 10 else 1
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"
