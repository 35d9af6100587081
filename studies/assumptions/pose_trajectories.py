"""Part 6 of the study on the multi-view pose task: what the energy's parameters did in training.

``python -m studies.assumptions.pose_trajectories --out docs/study`` trains the recipe
``recipes/pose/h36m_multiview.yaml`` in one leave-one-subject-out fold for several seeds — the
recipe's own task, DataModule and Trainer through ``lightning-energy fit`` — with a CSV logger
beside nothing else, so the values plotted are exactly those every recipe run logs to wandb
(``EnergyParameterMonitor``: ``energy/…`` per step). It writes ``pose_trajectories.json``,
``.png`` and ``.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

RECIPE = "recipes/pose/h36m_multiview.yaml"
SERIES = {
    "kernel scale δ (× 10 px)": "energy/kernel.scale",
    "pose prior weight": "energy/prior",
    "scale prior weight": "energy/scale_prior",
    "joint weights: mean log w": "energy/log_weights/mean",
    "joint weights: std of log w": "energy/log_weights/std",
    "PPCA log σ: mean": "energy/log_std/mean",
}
"""Panel title → the logged column (the interpretable parameters; the shape model's thousands
of coordinates are summarised by their PPCA scales)."""


def fit(seed: int, fold: str, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Train the recipe for one seed; its logged rows and the seconds it took."""
    import torch

    from lightning_energy.cli import run_cli

    torch.set_num_threads(1)
    logger = json.dumps({"class_path": "pytorch_lightning.loggers.CSVLogger",
                         "init_args": {"save_dir": str(run_dir), "name": "", "version": ""}})
    start = time.perf_counter()
    run_cli(["fit", "--config", RECIPE, "--data.init_args.fold", fold,
             "--seed_everything", str(seed), "--data.init_args.seed", str(seed),
             "--trainer.default_root_dir", str(run_dir), "--trainer.logger", logger,
             "--trainer.enable_progress_bar", "false", *overrides])
    seconds = time.perf_counter() - start
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {"seed": seed, "seconds": seconds, "rows": rows}


def series(rows: list[dict[str, str]]) -> dict[str, Any]:
    """Per logged column: the steps and values where it was logged; the validation MPJPE."""
    out: dict[str, Any] = {}
    for title, column in SERIES.items():
        points = [(int(r["step"]), float(r[column])) for r in rows if r.get(column)]
        out[title] = {"step": [p[0] for p in points], "value": [p[1] for p in points]}
    val = [(int(r["step"]), float(r["val/mpjpe"])) for r in rows if r.get("val/mpjpe")]
    out["val/mpjpe"] = {"step": [p[0] for p in val], "value": [p[1] for p in val]}
    return out


def figure(runs: list[dict[str, Any]], fold: str, path: Path) -> None:
    """One panel per interpretable parameter, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, title in zip(axes.flat, SERIES, strict=True):
        for run in runs:
            s = run["series"][title]
            ax.plot(s["step"], s["value"], label=f"seed {run['seed']}")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step (batches of 64 frames)")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Multi-view pose energy: its interpretable parameters during training "
                 f"(recipe h36m_multiview, fold {fold})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def numbers(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Initial and final value of every series per seed, the final validation MPJPE."""
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs],
                           "seconds": [round(r["seconds"], 1) for r in runs]}
    for title in [*SERIES, "val/mpjpe"]:
        out[title] = [{"first": r["series"][title]["value"][0],
                       "last": r["series"][title]["value"][-1]}
                      for r in runs if r["series"][title]["value"]]
    return out


def page(result: dict[str, Any], command: str) -> str:
    """The Markdown page: conclusions with their numbers, the figure, the command."""
    def span(title: str, key: str) -> str:
        values = [v[key] for v in result[title]]
        return f"{min(values):.3g}–{max(values):.3g}" if len(values) > 1 else f"{values[0]:.3g}"

    def change(title: str) -> str:
        return f"{span(title, 'first')} → {span(title, 'last')}"

    weights_first = [math.exp(v["first"]) for v in result["joint weights: mean log w"]]
    weights_last = [math.exp(v["last"]) for v in result["joint weights: mean log w"]]
    n = len(result["seeds"])
    seconds = f"{min(result['seconds']):.0f}–{max(result['seconds']):.0f}"
    return f"""# Study, multi-view pose: what the energy learned (part 6)

The recipe `{RECIPE}` trained in its {result['fold']} fold (the held-out
subject validates) for {n} seeds, each in {seconds} s on one CPU thread. The values are those
every recipe run logs (`EnergyParameterMonitor`; to wandb by
default, to CSV here), from the first logged step (the recipe logs every 10 steps) to the last;
ranges over seeds. The recipe starts δ at 2, the pose prior at 1, the scale prior at 10 and every
joint weight at 1.

- **Kernel scale δ** (pseudo-Huber, in units of 10 px): {change('kernel scale δ (× 10 px)')}.
- **Pose prior weight**: {change('pose prior weight')}; **scale prior weight**:
  {change('scale prior weight')}.
- **Joint weights**: geometric mean {min(weights_first):.3g}–{max(weights_first):.3g} →
  {min(weights_last):.3g}–{max(weights_last):.3g}; their spread (std of log w over joints and
  views) {change('joint weights: std of log w')}.
- **PPCA scales** (mean log σ of the pose bases): {change('PPCA log σ: mean')}.
- Validation MPJPE after training (mm, every 128th frame of the held-out subject):
  {span('val/mpjpe', 'last')}.

![Interpretable parameters during training](pose_trajectories.png)

*One line per seed; x: training step (batches of 64 frames). Panels: the pseudo-Huber kernel
scale, the weights of the pose prior and of the scale prior, the mean and spread of the log
joint weights, the mean log scale of the PPCA bases.*

## Command

```bash
{command}
```

It writes `pose_trajectories.json`, `.png` and this page.
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, read the logs, write the figure, numbers and page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/study"))
    parser.add_argument("--runs", type=Path, default=Path("runs/study/pose_trajectories"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fold", default="S8")
    parser.add_argument("--workers", type=int, default=2, help="fits at once (one thread each)")
    # Any other argument goes to `lightning-energy fit` (e.g. --trainer.max_steps 3).
    args, overrides = parser.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(fit, s, args.fold, args.runs / f"seed-{s}", overrides)
                   for s in args.seeds]
        runs = [f.result() for f in futures]
    for run in runs:
        run["series"] = series(run.pop("rows"))
    figure(runs, args.fold, args.out / "pose_trajectories.png")
    result = {"fold": args.fold, **numbers(runs)}
    result["series"] = {r["seed"]: r["series"] for r in runs}
    (args.out / "pose_trajectories.json").write_text(json.dumps(result, indent=1))
    command = ("OMP_NUM_THREADS=1 python -m studies.assumptions.pose_trajectories --out "
               f"{args.out}" + (f" --seeds {' '.join(map(str, args.seeds))}"
                                if args.seeds != [0, 1, 2] else ""))
    (args.out / "pose_trajectories.md").write_text(page(result, command))
    return result


if __name__ == "__main__":
    main()
