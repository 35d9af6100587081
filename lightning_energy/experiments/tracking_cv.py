"""K-fold, sequence-level cross-validation of tracker fusion with every baseline side by side.

    python -m lightning_energy.experiments.tracking_cv --root ../shared/data/otb100_tracker_fusion \
        --folds 5 --out docs/results/otb100_cv.json

Per fold (sequences split by video with :func:`~lightning_energy.data.splits.kfold_sequences`),
everything that is chosen or trained sees only the training sequences: the tracker ranking (for
"best single" and the top-k combinations), the grid search of the hand-set energy, and the
learned energies (initialised at the grid-search winner, then trained on windows through the
argmin). The test sequences are scored whole with the OTB protocol. The table reports mean ± std
over folds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from lightning_energy.adjoints.base import Adjoint
from lightning_energy.adjoints.unrolled import UnrolledAdjoint
from lightning_energy.baselines import tracking as bl
from lightning_energy.data.otb import TrackingSequences
from lightning_energy.data.splits import kfold_sequences
from lightning_energy.data.tracking_batch import collate_tracking
from lightning_energy.data.tracking_datamodule import TrackingWindows
from lightning_energy.data.tracking_synthetic import simulate_tracking
from lightning_energy.energies.robust import Cauchy
from lightning_energy.energies.tracking import TrackFusionEnergy, default_tracker_weights
from lightning_energy.energies.tracking_solvers import BandedImplicitAdjoint, BandedIRLS
from lightning_energy.layer import EnergyLayer
from lightning_energy.networks.tracker import TrackerFeatureNet
from lightning_energy.tasks.tracking import TrackerFusionTask

VARIANTS: dict[str, dict[str, Any]] = {
    "learned (implicit, λ=1e-2)": {},
    "learned (implicit, λ=0)": {"adjoint": lambda: BandedImplicitAdjoint(0.0)},
    "learned (unrolled)": {"adjoint": UnrolledAdjoint},
}
"""Learned-energy variants: name → :func:`make_task` options (all from the grid-search winner)."""

ABLATIONS: dict[str, dict[str, Any]] = {
    "ablation: no feature network": {"network": False},
    "ablation: α, β, δ fixed": {"learn_smoothness": False},
    "ablation: tracker base weights fixed": {"learn_tracker_weights": False},
    "ablation: alternating updates (every 10 steps)": {"alternate_every": 10},
}
"""Ablations of the learned groups and of joint updates (``--variants`` accepts these too)."""

GRID = {"temperature": (0.03, 0.1, None), "delta": (0.15, 0.4), "alpha": (1.0,)}
"""Grid of the hand-set energy: weight temperature (None: uniform), kernel δ, α multiplier."""


def make_task(num_trackers: int, weights: list[float] | None = None, delta: float = 0.3,
              alpha: float = 1.0, adjoint: Callable[[], Adjoint] | None = None,
              network: bool = False, learn_smoothness: bool = True,
              learn_tracker_weights: bool = True, alternate_every: int = 0,
              weighted_start: bool = True) -> TrackerFusionTask:
    """A fusion task with the given hand-set energy (α = multiplier × (1, 10))."""
    energy = TrackFusionEnergy(num_trackers, alpha=(alpha, 10 * alpha), beta=(1.0, 1.0),
                               kernel=Cauchy(delta, learnable=True), tracker_weights=weights,
                               learn_smoothness=learn_smoothness,
                               learn_tracker_weights=learn_tracker_weights,
                               weighted_start=weighted_start)
    layer = EnergyLayer(energy, BandedIRLS(max_steps=30, tol=1e-5),
                        adjoint() if adjoint is not None else BandedImplicitAdjoint(1e-2))
    backbone = TrackerFeatureNet(num_trackers) if network else None
    return TrackerFusionTask(layer, backbone, energy_lr=2e-2, backbone_lr=3e-3,
                             alternate_every=alternate_every)


def task_fuser(task: TrackerFusionTask) -> bl.Fuser:
    """Fuse a whole sequence with a task's energy (no gradients)."""

    def fuse(item: bl.TrackerResults) -> torch.Tensor:
        batch = bl.batch_of(item)
        with torch.no_grad():
            return task.predicted_boxes(task(batch), batch)[0]

    return fuse


def grid_search(train: TrackingSequences, aucs: np.ndarray,
                weighted_start: bool = True) -> tuple[dict[str, Any], float]:
    """Best grid point of the hand-set energy by success AUC on the training sequences."""
    best: tuple[dict[str, Any], float] = ({}, -1.0)
    for temperature, delta, alpha in itertools.product(*GRID.values()):
        weights = None if temperature is None else default_tracker_weights(list(aucs),
                                                                           temperature)
        point: dict[str, Any] = {"weights": weights, "delta": delta, "alpha": alpha,
                                 "weighted_start": weighted_start}
        task = make_task(train.num_trackers, **point)
        auc = bl.score_sequences(task_fuser(task), train)["success_auc"]
        if auc > best[1]:
            best = (point, auc)
            print(f"  grid: temperature={temperature}, δ={delta}, α×{alpha}: train AUC "
                  f"{auc:.3f} (best so far)", flush=True)
    return best


def train_task(task: TrackerFusionTask, train: TrackingSequences, steps: int, window: int,
               batch_size: int, seed: int) -> float:
    """Train on shuffled windows of the training sequences; returns seconds."""
    pl.seed_everything(seed, verbose=False)
    loader = DataLoader(TrackingWindows(train, window), batch_size=batch_size, shuffle=True,
                        collate_fn=collate_tracking)
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, logger=False, accelerator="cpu",
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(task, train_dataloaders=loader)
    return time.perf_counter() - start


def fixed_baselines(train: TrackingSequences, test: TrackingSequences,
                    aucs: np.ndarray, top: int) -> dict[str, dict[str, float]]:
    """Single trackers, best single, median/mean of all and of the top-k, and the oracle."""
    rows = {f"single: {name}": bl.score_sequences(bl.single_tracker(k), test)
            for k, name in enumerate(train.trackers)}
    best = int(np.argmax(aucs))
    rows["best single (chosen on train)"] = rows[f"single: {train.trackers[best]}"]
    chosen = bl.top_k(aucs, top)
    for how in ("median", "mean"):
        rows[f"{how} of all"] = bl.score_sequences(bl.coordinatewise(how), test)
        rows[f"{how} of top-{top}"] = bl.score_sequences(bl.coordinatewise(how, chosen), test)
    rows["oracle (per-frame best, hindsight)"] = bl.score_sequences(bl.oracle, test)
    return rows


def run_fold(data: TrackingSequences, fold: int, args: argparse.Namespace) -> dict[str, dict]:
    """Every baseline and learned variant on one fold; returns row name → scores."""
    train_names, test_names = kfold_sequences(data.names, args.folds, fold, args.seed,
                                              data.groups)
    train, test = data.subset(train_names), data.subset(test_names)
    aucs = bl.tracker_aucs(train)
    rows = fixed_baselines(train, test, aucs, args.top)
    k = data.num_trackers
    hand_set = make_task(k, weighted_start=not args.consensus_start)
    rows["energy, hand-set (uniform weights)"] = bl.score_sequences(task_fuser(hand_set), test)
    start = time.perf_counter()
    point, train_auc = grid_search(train, aucs, not args.consensus_start)
    rows["energy, grid search on train"] = bl.score_sequences(
        task_fuser(make_task(k, **point)), test)
    rows["energy, grid search on train"]["seconds"] = time.perf_counter() - start
    print(f"fold {fold}: grid winner δ={point['delta']}, α×{point['alpha']}, "
          f"AUC weights={point['weights'] is not None}, train AUC {train_auc:.3f}", flush=True)
    for name in args.variants:
        options = {"network": True, **VARIANTS.get(name, ABLATIONS.get(name, {}))}
        task = make_task(k, **point, **options)
        seconds = train_task(task, train, args.steps, args.window, args.batch_size,
                             args.seed + fold)
        rows[name] = {**bl.score_sequences(task_fuser(task), test), "seconds": seconds}
        print(f"fold {fold}: {name}: AUC {rows[name]['success_auc']:.3f} ({seconds:.0f} s)",
              flush=True)
    return rows


def summarise(folds: Sequence[dict[str, dict]]) -> dict[str, dict[str, list[float]]]:
    """Row → metric → values over folds."""
    out: dict[str, dict[str, list[float]]] = {}
    for rows in folds:
        for name, scores in rows.items():
            for metric, value in scores.items():
                out.setdefault(name, {}).setdefault(metric, []).append(value)
    return out


def format_table(summary: dict[str, dict[str, list[float]]]) -> str:
    """Markdown table of mean ± std over folds (success AUC, precision, mean IoU, seconds)."""
    lines = ["| method | success AUC | precision@20px | mean IoU | time/fold (s) |",
             "|---|---|---|---|---|"]
    for name, metrics in summary.items():
        cells = [f"{np.mean(metrics[m]):.3f} ± {np.std(metrics[m]):.3f}" for m in bl.METRICS]
        seconds = f"{np.mean(metrics['seconds']):.0f}" if "seconds" in metrics else ""
        lines.append(f"| {name} | {' | '.join(cells)} | {seconds} |")
    return "\n".join(lines)


def load(args: argparse.Namespace) -> TrackingSequences:
    """The development sequences of ``--root``, or simulated ones."""
    if args.root is None:
        return simulate_tracking(args.synthetic_sequences, args.synthetic_length,
                                 args.synthetic_trackers, seed=args.seed)
    return TrackingSequences.from_root(args.root, split=args.split)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="OTB-layout folder; omit to simulate")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", type=int, nargs="*", default=None)
    parser.add_argument("--top", type=int, default=5, help="k of the top-k combinations")
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps per variant")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS),
                        choices=[*VARIANTS, *ABLATIONS])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--consensus-start", action="store_true",
                        help="start the solver at the unweighted consensus (first OTB run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write per-fold scores as JSON here")
    parser.add_argument("--synthetic-sequences", type=int, default=20)
    parser.add_argument("--synthetic-length", type=int, default=200)
    parser.add_argument("--synthetic-trackers", type=int, default=6)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> str:
    """Run the cross-validation, print and return the table."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    data = load(args)
    folds = args.only_folds if args.only_folds is not None else range(args.folds)
    results: list[dict[str, dict]] = []
    for fold in folds:
        results.append(run_fold(data, fold, args))
        save(args.out, args, results, time.perf_counter() - start)  # after every fold
    table = format_table(summarise(results))
    print(table)
    print(f"total {time.perf_counter() - start:.0f} s on {torch.get_num_threads()} thread(s)")
    return table


def save(out: str | None, args: argparse.Namespace, results: list[dict[str, dict]],
         seconds: float) -> None:
    """Write the per-fold scores so far as JSON (nothing when ``out`` is None)."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({"args": vars(args), "folds": results,
                                         "seconds": seconds}, indent=1))


if __name__ == "__main__":
    main()
