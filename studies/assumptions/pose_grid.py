"""Part 5 of the study on the multi-view pose task: learning against grid search, equal accuracy.

``python -m studies.assumptions.pose_grid --out docs/study`` compares two ways of setting the
weights a grid can search — the pose prior's weight and the pseudo-Huber kernel scale δ — in
the leave-one-subject-out fold S8 of ``recipes/pose/h36m_multiview.yaml`` (train S1 S5 S6 S7,
test S8), both through ``lightning-energy cv``:

* **learned**: the recipe trained with its ``learn`` list cut to ``[prior, kernel]`` (every
  other parameter as initialised), several seeds;
* **grid**: G × G log-spaced values of the same two, the energy otherwise the same untrained
  one, each point scored by MPJPE on frames of S1 (the fold's validation subject, a training
  subject) and the best tested, for several G.

It writes ``pose_grid.json``, ``.png`` and ``.md``: test MPJPE against grid points and seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from studies.assumptions.pose_trajectories import RECIPE
from studies.assumptions.recipe_runs import command_section, study_parser

FOLD = "S8"
PRIOR_RANGE = (0.1, 10.0)
KERNEL_RANGE = (0.5, 8.0)
"""Log-spaced ranges of the grids: the pose prior's weight (recipe 1) and δ (× 10 px; recipe 2)."""
SCORE_STRIDE = 8
"""Every 8th stored frame of S1 scores a grid point (~390 frames; the recipe's 128 gives ~25)."""
_ENERGY = "model.init_args.energy.init_args"


def grid_file(size: int, folder: Path) -> Path:
    """A ``cv --grid`` file of ``size`` × ``size`` points over the two ranges."""
    spec = {"grid": {f"{_ENERGY}.prior_weight": _geomspace(PRIOR_RANGE, size),
                     f"{_ENERGY}.kernel_scale": _geomspace(KERNEL_RANGE, size)},
            "monitor": "val/mpjpe", "mode": "min", "split": "val"}
    path = folder / f"grid{size}.json"  # JSON is YAML
    path.write_text(json.dumps(spec))
    return path


def _geomspace(bounds: tuple[float, float], size: int) -> list[float]:
    return [float(f"{v:.4g}") for v in np.geomspace(*bounds, size)]


def run_cv(arguments: list[str]) -> dict[str, Any]:
    """``lightning-energy cv`` with ``arguments`` in this process (one thread); its record."""
    import torch

    from lightning_energy.crossval import main as cross_validate

    torch.set_num_threads(1)
    cross_validate(arguments)
    out = Path(arguments[arguments.index("--out") + 1])
    return json.loads(next(out.glob("*.json")).read_text())


def jobs(args: argparse.Namespace, folder: Path) -> dict[str, list[str]]:
    """Job name → its ``cv`` arguments."""
    common = ["--config", RECIPE, "--folds", FOLD, "--data.init_args.val_frame_stride",
              str(SCORE_STRIDE), "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false"]
    out = {f"grid {g}×{g}": [*common, "--grid", str(grid_file(g, folder)), "--no-fit",
                             "--out", str(args.runs / f"grid{g}")] for g in sorted(args.grids)}
    for seed in args.seeds:
        out[f"learned, seed {seed}"] = [
            *common, "--seeds", str(seed), "--out", str(args.runs / f"learned-seed{seed}"),
            f"--{_ENERGY}.learn", "[prior, kernel]"]
    return out


def summarise(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Rows of the table: test errors, points, seconds, and the chosen or learned values."""
    rows: dict[str, Any] = {}
    for name, record in records.items():
        test = record["test"]
        row = {"mpjpe": test["test/mpjpe"], "pa_mpjpe": test["test/pa_mpjpe"]}
        if "grid" in record:
            start = record["grid_start"]
            row.update(points=len(record["grid"]), seconds=record["grid_seconds"],
                       prior=start[f"{_ENERGY}.prior_weight"],
                       kernel=start[f"{_ENERGY}.kernel_scale"])
        else:
            row.update(points=None, seconds=record["fit_seconds"])
        rows[name] = row
    learned = [r for n, r in rows.items() if n.startswith("learned")]
    summary = {"rows": rows}
    if learned:
        summary["learned"] = {k: [statistics.fmean(r[k] for r in learned),
                                  statistics.pstdev(r[k] for r in learned)]
                              for k in ("mpjpe", "pa_mpjpe", "seconds")}
    return summary


def learned_values(runs: Path, seeds: list[int]) -> dict[int, dict[str, float]]:
    """The prior weight and δ each learned run ended with (read from its last checkpoint)."""
    import torch

    out = {}
    for seed in seeds:
        ckpt = next((runs / f"learned-seed{seed}").rglob("last.ckpt"), None)
        if ckpt is None:
            continue
        state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
        values = {name: float(state[key].exp()) for key in state
                  for suffix, name in (("energy.log_prior", "λ_prior"), ("kernel.log_scale", "δ"))
                  if key.endswith(suffix)}
        out[seed] = values
    return out


def figure(summary: dict[str, Any], path: Path) -> None:
    """Test MPJPE against grid points and against seconds; the learned runs as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = [r for n, r in summary["rows"].items() if n.startswith("grid")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], "points", "grid points (untrained energy solves of the "
                                               "scoring frames)"),
                           (axes[1], "seconds", "seconds (one CPU thread)")):
        ax.plot([r[key] for r in grids], [r["mpjpe"] for r in grids], "o-",
                label="grid search: best point, tested")
        if "learned" in summary:
            mean, std = summary["learned"]["mpjpe"]
            ax.axhspan(mean - std, mean + std, alpha=0.25, color="C1",
                       label="learned (mean ± std over seeds)")
            ax.axhline(mean, color="C1")
            if key == "seconds":
                ax.axvline(summary["learned"]["seconds"][0], color="C1", ls="--",
                           label="learned: seconds of training")
        ax.set_xscale("log")
        if key == "points":
            ax.set_xticks([r["points"] for r in grids], [str(r["points"]) for r in grids])
            ax.minorticks_off()
        ax.set_xlabel(label)
        ax.set_ylabel(f"test MPJPE on {FOLD} (mm)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Pose prior weight and kernel scale: learned against grid search "
                 f"(fold {FOLD})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def page(result: dict[str, Any], command: str) -> str:
    """The Markdown page: the answer with its numbers, the table, the figure, the command."""
    summary = result["summary"]
    rows = summary["rows"]
    lines = []
    for name, r in rows.items():
        if name.startswith("grid"):
            choice = f"λ_prior = {r['prior']:g}, δ = {r['kernel']:g}"
        else:
            seed = int(name.rsplit(" ", 1)[-1])
            values = result["learned_values"].get(str(seed)) or result["learned_values"].get(seed)
            choice = (", ".join(f"{k} = {v:.3g}" for k, v in sorted(values.items()))
                      if values else "–")
        points = r["points"] if r["points"] is not None else "–"
        lines.append(f"| {name} | {r['mpjpe']:.1f} | {r['pa_mpjpe']:.1f} | {points} | "
                     f"{r['seconds']:.0f} | {choice} |")
    answer = []
    if "learned" in summary:
        mean, std = summary["learned"]["mpjpe"]
        secs = summary["learned"]["seconds"][0]
        for name, r in rows.items():
            if name.startswith("grid"):
                verdict = ("beats" if r["mpjpe"] < mean - std else
                           "matches" if r["mpjpe"] <= mean + std else "does not match")
                edge = [label for label, value, bounds in (
                    ("λ_prior", r["prior"], PRIOR_RANGE), ("δ", r["kernel"], KERNEL_RANGE))
                    if value in bounds]
                answer.append(f"- **{name}** ({r['points']} points, {r['seconds']:.0f} s): "
                              f"{r['mpjpe']:.1f} mm, {verdict} the learned "
                              f"{mean:.1f} ± {std:.1f} mm ({secs:.0f} s of training)"
                              + (f"; its choice of {' and '.join(edge)} is at the edge of the "
                                 "range searched" if edge else "") + ".")
    learned_at = [v for v in result["learned_values"].values() if v]
    if learned_at:
        answer.append("- The learned runs ended at " + ", ".join(
            f"{name} = {min(v[name] for v in learned_at):.3g}–"
            f"{max(v[name] for v in learned_at):.3g}" for name in ("λ_prior", "δ"))
            + " (started at 1 and 2); the grids chose (λ_prior, δ) = "
            + ", ".join(f"({r['prior']:.3g}, {r['kernel']:.3g})" for n, r in rows.items()
                        if n.startswith("grid")) + ".")
    table = "\n".join(lines)
    return f"""# Study, multi-view pose: learned weights against grid search (part 5)

Part 5 of the [assumption study](index.md) on the real task: the two energy weights a grid
can search — the pose prior's weight λ_prior and the pseudo-Huber kernel scale δ (× 10 px) —
set by learning them or by grid search, every other parameter of the energy the same untrained
one, in the leave-one-subject-out fold {FOLD} of `{RECIPE}` (train S1 S5 S6 S7, test {FOLD}
every 4th stored frame).

## Answer

{chr(10).join(answer)}

Where learning pays is where a grid cannot go: the recipe learning every parameter group
(joint weights, the PPCA shape model, camera corrections, the priors; thousands of values)
reaches 37.6 mm on this fold ([pose results](../results/pose.md), seed 0).

## Table

| run | test MPJPE (mm) | test PA-MPJPE (mm) | grid points | seconds | λ_prior, δ chosen/learned |
|---|---|---|---|---|---|
{table}

![Learned against grid search](pose_grid.png)

*Test MPJPE of each grid's best point against the number of points (left) and the seconds the
search took (right); the band: the learned runs' mean ± std, the dashed line their training
time.*

## Protocol

- **Learned**: the recipe (150 Adam steps of 64 frames, rate 1e-2, LM ≤ 30 steps, implicit
  adjoint λ = 1e-2) with `learn: [prior, kernel]`; seconds: `trainer.fit`.
- **Grid**: λ_prior in [{PRIOR_RANGE[0]:g}, {PRIOR_RANGE[1]:g}] × δ in
  [{KERNEL_RANGE[0]:g}, {KERNEL_RANGE[1]:g}], log-spaced, G values each; every point scored by
  the untrained energy's MPJPE on every {SCORE_STRIDE}th stored frame of S1 (a training subject),
  the lowest tested; seconds: the whole search (`cv` records `grid_seconds`).
- **Hardware**: the 2-core development VM, one thread per job, {result.get("workers", 2)} jobs at a
  time.

{command_section(command, "pose_grid")}"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every job, read the records, write the figure, numbers and page."""
    parser = study_parser(__doc__, "pose_grid", replot=True)
    parser.add_argument("--grids", type=int, nargs="+", default=[3, 5, 9])
    args, overrides = parser.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "OMP_NUM_THREADS=1 python -m studies.assumptions.pose_grid --out " + str(args.out)
    if args.replot:
        result = json.loads((args.out / "pose_grid.json").read_text())
        figure(result["summary"], args.out / "pose_grid.png")
        (args.out / "pose_grid.md").write_text(page(result, command))
        return result
    with tempfile.TemporaryDirectory() as folder:
        todo = jobs(args, Path(folder))
        # The largest grid first: it is the longest job.
        order = sorted(todo, key=lambda n: -int(n.split("×")[-1]) if n.startswith("grid") else 0)
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            futures = {n: pool.submit(run_cv, [*todo[n], *overrides]) for n in order}
            records = {n: futures[n].result() for n in todo}
    summary = summarise(records)
    result = {"fold": FOLD, "workers": args.workers, "summary": summary,
              "learned_values": learned_values(args.runs, args.seeds)}
    figure(summary, args.out / "pose_grid.png")
    (args.out / "pose_grid.json").write_text(json.dumps(result, indent=1))
    (args.out / "pose_grid.md").write_text(page(result, command))
    return result


if __name__ == "__main__":
    main()
