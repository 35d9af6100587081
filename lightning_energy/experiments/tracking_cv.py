"""K-fold, sequence-level cross-validation of tracker fusion with every baseline side by side.

    python -m lightning_energy.experiments.tracking_cv --root ../shared/data/otb100_tracker_fusion \
        --folds 5 --out docs/results/otb100_cv.json

Per fold (sequences split by video with :func:`~lightning_energy.data.splits.kfold_sequences`),
everything that is chosen or trained sees only the training sequences: the tracker ranking (for
"best single" and the top-k combinations), the grid search of the hand-set energy, and the
learned energies (initialised at the grid-search winner, then trained on windows through the
argmin). The test sequences are scored whole with the OTB protocol. The table reports mean ± std
over folds.

With ``--val-fraction`` > 0 each fold's training sequences are split again (whole videos): the
learned variants start from a grid search on the rest, train on the rest, and keep the
checkpoint (step 0, i.e. that grid winner, and every ``--eval-every`` steps) with the best
validation success AUC; one more row picks, per fold, the variant with the best validation AUC.
The test fold plays no part in any of it. ``--refit`` then also trains each learned variant
afresh on all training sequences for the validation-chosen number of steps.

``--selector`` adds a baseline that uses the learned fusion's inputs without the energy: a
supervised per-frame tracker selector on the feature network's features
(:func:`~lightning_energy.baselines.tracking_selector.train_selector`).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from lightning_energy.adjoints.base import Adjoint
from lightning_energy.adjoints.unrolled import UnrolledAdjoint
from lightning_energy.baselines import tracking as bl
from lightning_energy.baselines.tracking_selector import train_selector
from lightning_energy.data.otb import TrackingSequences
from lightning_energy.data.splits import kfold_sequences, train_val_split
from lightning_energy.data.tracking_batch import collate_tracking
from lightning_energy.data.tracking_datamodule import TrackingWindows, check_tracker_dropout
from lightning_energy.data.tracking_synthetic import simulate_tracking
from lightning_energy.energies.robust import Cauchy, GemanMcClure, Huber, PseudoHuber, RobustKernel
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
    "ablation: unweighted feature reference": {"weighted_reference": False},
    "ablation: no temporal convolution": {"temporal": 0},
    "ablation: no tracker-identity embedding": {"embedding": 0},
}
"""Ablations of the learned groups and of joint updates (``--variants`` accepts these too)."""

LEARNING_RATES: dict[str, dict[str, Any]] = {
    "learned (implicit, λ=1e-2), network lr 1e-3": {"backbone_lr": 1e-3},
    "learned (implicit, λ=1e-2), network lr 1e-2": {"backbone_lr": 1e-2},
    "learned (implicit, λ=1e-2), energy lr 5e-3": {"energy_lr": 5e-3},
}
"""The default learned variant with other learning rates (network 3e-3, energy 2e-2 by default);
run together, the :data:`SELECTED` row picks the rate per fold on validation."""

NETWORK_WIDTHS: dict[str, dict[str, Any]] = {
    "learned (implicit, λ=1e-2), network width 16": {"hidden": 16},
    "learned (implicit, λ=1e-2), network width 64": {"hidden": 64},
}
"""The default learned variant with a narrower or wider feature network (32 by default)."""

TUNING = {**LEARNING_RATES, **NETWORK_WIDTHS}
"""Every variant of the default learned energy with other hyper-parameters."""

SELECTED = "learned, variant chosen on validation (per fold)"
"""Row of the variant with the best validation AUC (needs ``--val-fraction`` and 2+ variants)."""

SELECTOR = "supervised per-frame selector (network's features, trained on train)"
"""Row of :func:`~lightning_energy.baselines.tracking_selector.train_selector` (``--selector``)."""

GRID = {"temperature": (0.03, 0.1, None), "delta": (0.15, 0.4)}
"""Grid of the hand-set energy: weight temperature (None: uniform) and kernel δ."""

GRID_ALPHAS: tuple[float, ...] = (1.0,)
"""The grid's default smoothness multipliers α × (1, 10) (``--alphas`` sets others)."""

KERNELS: dict[str, type[RobustKernel]] = {"cauchy": Cauchy, "geman_mcclure": GemanMcClure,
                                          "pseudo_huber": PseudoHuber, "huber": Huber}
"""Robust kernel families of the data term that ``--kernels`` lets the grid search choose from."""


def make_task(num_trackers: int, weights: list[float] | None = None, delta: float = 0.3,
              alpha: float = 1.0, adjoint: Callable[[], Adjoint] | None = None,
              network: bool = False, learn_smoothness: bool = True,
              learn_tracker_weights: bool = True, alternate_every: int = 0,
              weighted_start: bool = True, weighted_reference: bool = False,
              temporal: int = 0, width: int = 9,
              dilations: tuple[int, ...] = (1, 4),
              motion: float | None = None, embedding: int = 4,
              context: bool = False, energy_lr: float = 2e-2,
              backbone_lr: float = 3e-3, kernel: str = "cauchy",
              hidden: int = 32, box_loss: Literal["giou", "iou"] = "giou") -> TrackerFusionTask:
    """A fusion task with the given hand-set energy (α = multiplier × (1, 10)).

    ``motion`` is the initial scale γ of a learnable Cauchy motion kernel (robust smoothness),
    None for quadratic smoothness.

    ``network``, ``weighted_reference``, ``temporal``, ``width``, ``dilations``, ``context`` and
    ``embedding`` (the tracker-identity embedding's width, 0 for none) configure the
    :class:`~lightning_energy.networks.tracker.TrackerFeatureNet` (none without ``network``).
    ``energy_lr`` (α, β, δ, base weights) and ``backbone_lr`` (the network) are Adam's rates.
    ``kernel`` names the data term's robust family in :data:`KERNELS` (scale δ = ``delta``);
    ``hidden`` is the network's hidden width; ``box_loss`` the training loss (1 − GIoU or
    1 − IoU).
    """
    if kernel not in KERNELS:
        raise ValueError(f"Expected `kernel` to be one of {list(KERNELS)}, got {kernel!r}.")
    energy = TrackFusionEnergy(num_trackers, alpha=(alpha, 10 * alpha), beta=(1.0, 1.0),
                               kernel=KERNELS[kernel](delta, learnable=True),
                               tracker_weights=weights,
                               learn_smoothness=learn_smoothness,
                               learn_tracker_weights=learn_tracker_weights,
                               weighted_start=weighted_start,
                               motion_kernel=None if motion is None else Cauchy(
                                   motion, learnable=True))
    layer = EnergyLayer(energy, BandedIRLS(max_steps=30, tol=1e-5),
                        adjoint() if adjoint is not None else BandedImplicitAdjoint(1e-2))
    backbone = (TrackerFeatureNet(num_trackers, embedding, hidden,
                                  weighted_reference=weighted_reference,
                                  temporal=temporal, width=width, dilations=dilations,
                                  context=context)
                if network else None)
    return TrackerFusionTask(layer, backbone, energy_lr=energy_lr, backbone_lr=backbone_lr,
                             alternate_every=alternate_every, box_loss=box_loss)


def seeded_task(seed: int, *args: Any, **kwargs: Any) -> TrackerFusionTask:
    """:func:`make_task` with the network's initial weights drawn from ``seed``.

    The network's output starts at zero whatever its weights, so an unseeded draw does not show
    at step 0, but it changes the whole training run: two runs of one command would differ.
    """
    torch.manual_seed(seed)
    return make_task(*args, **kwargs)


def task_fuser(task: TrackerFusionTask) -> bl.Fuser:
    """Fuse a whole sequence with a task's energy (no gradients)."""

    def fuse(item: bl.TrackerResults) -> torch.Tensor:
        batch = bl.batch_of(item)
        with torch.no_grad():
            return task.predicted_boxes(task(batch), batch)[0]

    return fuse


def ensemble_fuser(tasks: Sequence[TrackerFusionTask]) -> bl.Fuser:
    """Average the fused tracks of several tasks: centres and log-sizes, frame by frame."""
    fusers = [task_fuser(task) for task in tasks]

    def fuse(item: bl.TrackerResults) -> torch.Tensor:
        boxes = torch.stack([fuser(item) for fuser in fusers])  # (M, T, 4)
        size = boxes[..., 2:].clamp_min(1e-6)
        centre = (boxes[..., :2] + 0.5 * size).mean(0)
        size = size.log().mean(0).exp()
        return torch.cat([centre - 0.5 * size, size], -1)

    return fuse


def auc_weights(aucs: np.ndarray, temperature: float | None) -> list[float] | None:
    """Per-tracker weights from training AUCs at a grid temperature (None: uniform)."""
    return None if temperature is None else default_tracker_weights(list(aucs), temperature)


def check_alphas(alphas: Sequence[float]) -> None:
    """Raise ``ValueError`` unless ``alphas`` holds one or more multipliers > 0."""
    if not alphas or any(not alpha > 0 for alpha in alphas):
        raise ValueError(f"Expected `alphas`: one or more numbers > 0, got {list(alphas)}.")


def grid_search(train: TrackingSequences, aucs: np.ndarray, weighted_start: bool = True,
                motions: Sequence[float] = (),
                kernels: Sequence[str] = ("cauchy",),
                alphas: Sequence[float] = GRID_ALPHAS) -> tuple[dict[str, Any], float]:
    """Best grid point of the hand-set energy by success AUC on the training sequences.

    ``motions``: robust-smoothness scales γ tried besides quadratic smoothness (see
    :func:`make_task`); ``kernels``: the data term's robust families (:data:`KERNELS`);
    ``alphas``: the smoothness multipliers (α = multiplier × (1, 10)). Each multiplies the
    grid's size.
    """
    if not kernels:
        raise ValueError("Expected at least one kernel family in `kernels`, got none.")
    check_alphas(alphas)
    best: tuple[dict[str, Any], float] = ({}, -1.0)
    grid = itertools.product(GRID["temperature"], GRID["delta"], alphas, (None, *motions))
    for kernel, (temperature, delta, alpha, motion) in itertools.product(kernels, list(grid)):
        weights = auc_weights(aucs, temperature)
        point: dict[str, Any] = {"weights": weights, "delta": delta, "alpha": alpha,
                                 "weighted_start": weighted_start, "motion": motion,
                                 "kernel": kernel}
        task = make_task(train.num_trackers, **point)
        auc = bl.score_sequences(task_fuser(task), train)["success_auc"]
        if auc > best[1]:
            best = (point, auc)
            print(f"  grid: {kernel}, temperature={temperature}, δ={delta}, α×{alpha}, "
                  f"γ={motion}: train AUC {auc:.3f} (best so far)", flush=True)
    return best


class BestOnValidation(pl.Callback):
    """Score whole validation sequences before training and every ``every`` steps; keep the best.

    At the end of training the task is restored to the best-scoring state (success AUC; the
    earliest on ties, so step 0, the untrained grid-search winner, wins a tie).

    Args:
        val: Validation sequences (scored whole, OTB protocol).
        every: Optimizer steps between scores.
    """

    def __init__(self, val: TrackingSequences, every: int) -> None:
        if every < 1:
            raise ValueError(f"Expected `every` >= 1, got {every}.")
        self.val, self.every = val, every
        self.history: list[tuple[int, float]] = []
        self.best_step, self.best_auc = 0, -1.0
        self.best_state: dict[str, torch.Tensor] = {}

    def _score(self, task: TrackerFusionTask, step: int) -> None:
        auc = bl.score_sequences(task_fuser(task), self.val)["success_auc"]
        self.history.append((step, auc))
        print(f"  validation: step {step}: AUC {auc:.3f}", flush=True)
        if auc > self.best_auc:
            self.best_step, self.best_auc = step, auc
            self.best_state = copy.deepcopy(task.state_dict())

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        assert isinstance(pl_module, TrackerFusionTask)
        self._score(pl_module, 0)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,  # noqa: D102
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        assert isinstance(pl_module, TrackerFusionTask)
        if trainer.global_step % self.every == 0:
            self._score(pl_module, trainer.global_step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        pl_module.load_state_dict(self.best_state)


def train_task(task: TrackerFusionTask, train: TrackingSequences, steps: int, window: int,
               batch_size: int, seed: int, selection: BestOnValidation | None = None,
               balanced: bool = False, tracker_dropout: float = 0.0) -> float:
    """Train on shuffled windows of ``window`` frames (0: whole sequences); returns seconds.

    With ``selection`` the task ends at its best validation checkpoint (see
    :class:`BestOnValidation`); the seconds include the validation scoring. With ``balanced``
    windows are drawn (with replacement) so that every sequence is equally likely
    (:meth:`~lightning_energy.data.tracking_datamodule.TrackingWindows.sequence_balanced_weights`).
    ``tracker_dropout`` removes each tracker from a training window with that probability.
    """
    pl.seed_everything(seed, verbose=False)
    windows = TrackingWindows(train, window or None, tracker_dropout=tracker_dropout)
    sampler = None
    if balanced:
        weights = windows.sequence_balanced_weights()
        sampler = WeightedRandomSampler(weights, len(weights),
                                        generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(windows, batch_size=batch_size, shuffle=sampler is None,
                        sampler=sampler, collate_fn=collate_tracking)
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, logger=False, accelerator="cpu",
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[selection] if selection is not None else None)
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
    trust = agreement_trust(train, aucs)
    rows["agreement-selected tracker per sequence (trust chosen on train)"] = bl.score_sequences(
        bl.agreement_selected(trust), test)
    rows["oracle (per-sequence best tracker, hindsight)"] = bl.score_sequences(
        bl.sequence_oracle, test)
    rows["oracle (per-frame best, hindsight)"] = bl.score_sequences(bl.oracle, test)
    return rows


def agreement_trust(train: TrackingSequences, aucs: np.ndarray) -> np.ndarray | None:
    """Trust of :func:`~lightning_energy.baselines.tracking.agreement_selected`, chosen on train.

    Uniform, or the hand-set weights of the training AUCs at one of the grid's temperatures,
    whichever selects best on the training sequences.
    """
    best: tuple[np.ndarray | None, float] = (None, -1.0)
    for temperature in GRID["temperature"]:
        weights = auc_weights(aucs, temperature)
        trust = None if weights is None else np.array(weights)
        auc = bl.score_sequences(bl.agreement_selected(trust), train)["success_auc"]
        if auc > best[1]:
            best = (trust, auc)
    return best[0]


def run_fold(data: TrackingSequences, fold: int, args: argparse.Namespace) -> dict[str, dict]:
    """Every baseline and learned variant on one fold; returns row name → scores."""
    train_names, test_names = kfold_sequences(data.names, args.folds, fold, args.seed,
                                              data.groups)
    train, test = data.subset(train_names), data.subset(test_names)
    aucs = bl.tracker_aucs(train)
    rows = fixed_baselines(train, test, aucs, args.top)
    if args.baselines_only:
        return rows
    k = data.num_trackers
    hand_set = make_task(k, weighted_start=not args.consensus_start)
    rows["energy, hand-set (uniform weights)"] = bl.score_sequences(task_fuser(hand_set), test)
    start = time.perf_counter()
    point, train_auc = grid_search(train, aucs, not args.consensus_start, args.motion_scales,
                                   args.kernels, args.alphas)
    rows["energy, grid search on train"] = bl.score_sequences(
        task_fuser(make_task(k, **point)), test)
    rows["energy, grid search on train"]["seconds"] = time.perf_counter() - start
    print(f"fold {fold}: grid winner {point['kernel']}, δ={point['delta']}, α×{point['alpha']}, "
          f"γ={point['motion']}, "
          f"AUC weights={point['weights'] is not None}, train AUC {train_auc:.3f}", flush=True)
    if args.selector:
        rows[SELECTOR] = selector_row(train, test, point, args, fold)
    fit, val, outer_point = train, None, point
    if args.val_fraction > 0:
        fit_names, val_names = train_val_split(train_names, args.val_fraction, args.seed + fold,
                                               data.groups)
        fit, val = data.subset(fit_names), data.subset(val_names)
        # The learned variants start from a grid point that has not seen the validation set,
        # so that step 0 competes on equal terms in the checkpoint selection.
        point, fit_auc = grid_search(fit, bl.tracker_aucs(fit), not args.consensus_start,
                                     args.motion_scales, args.kernels, args.alphas)
        print(f"fold {fold}: inner grid winner {point['kernel']}, δ={point['delta']}, "
              f"α×{point['alpha']}, "
              f"γ={point['motion']}, "
              f"AUC weights={point['weights'] is not None}, fit AUC {fit_auc:.3f}", flush=True)
    for name in args.variants:
        rows.update(variant_rows(name, fold, k, point, fit, val, test, args))
        if args.refit and val is not None:
            row, steps = f"{name}, refit on train + validation", int(rows[name]["best_step"])
            rows[row] = refit(steps, train, test, args.seed + fold, args, k, **outer_point,
                              **variant_options(name, args))
            print(f"fold {fold}: {row}: AUC {rows[row]['success_auc']:.3f} ({steps} steps)",
                  flush=True)
    chosen = add_selected_row(rows, args.variants)
    if chosen is not None:
        print(f"fold {fold}: selected on validation: {chosen}", flush=True)
    return rows


def selector_row(train: TrackingSequences, test: TrackingSequences, point: dict[str, Any],
                 args: argparse.Namespace, fold: int) -> dict[str, float]:
    """Scores of the :data:`SELECTOR` baseline, its features weighted as the network's."""
    start = time.perf_counter()
    trust = (torch.tensor(point["weights"], dtype=torch.float64)
             if args.weighted_reference and point["weights"] is not None else None)
    row = {**bl.score_sequences(train_selector(train, trust, seed=args.seed + fold), test),
           "seconds": time.perf_counter() - start}
    print(f"fold {fold}: {SELECTOR}: AUC {row['success_auc']:.3f}", flush=True)
    return row


def variant_options(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """:func:`make_task` options of a learned variant or ablation under the network flags."""
    network = {"network": True, "weighted_reference": args.weighted_reference,
               "temporal": args.temporal, "width": args.feature_width,
               "dilations": tuple(args.dilations), "context": args.context,
               "box_loss": args.box_loss}
    return {**network, **{**VARIANTS, **TUNING, **ABLATIONS}.get(name, {})}


def variant_rows(name: str, fold: int, k: int, point: dict[str, Any], fit: TrackingSequences,
                 val: TrackingSequences | None, test: TrackingSequences,
                 args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Train one learned variant from ``point`` (``--ensemble`` models); its test-fold rows."""
    options, rows = variant_options(name, args), {}
    members, seconds = [], 0.0
    for member in range(args.ensemble):
        # Member 0 trains exactly as a run without --ensemble; the others change the seed.
        seed = args.seed + fold + 1000 * member
        task = seeded_task(seed, k, **point, **options)
        selection = BestOnValidation(val, args.eval_every) if val is not None else None
        seconds += train_task(task, fit, args.steps, args.window, args.batch_size, seed,
                              selection, args.balanced, args.tracker_dropout)
        members.append(task)
        if member == 0:
            rows[name] = {**bl.score_sequences(task_fuser(task), test), "seconds": seconds}
            note = ""
            if selection is not None:
                rows[name].update(val_auc=selection.best_auc, best_step=selection.best_step)
                note = (f", val AUC {selection.best_auc:.3f} at step {selection.best_step} "
                        f"(step 0: {selection.history[0][1]:.3f})")
            print(f"fold {fold}: {name}: AUC {rows[name]['success_auc']:.3f} "
                  f"({seconds:.0f} s{note})", flush=True)
    if args.ensemble > 1:
        row = f"{name}, ensemble of {args.ensemble}"
        rows[row] = {**bl.score_sequences(ensemble_fuser(members), test),
                     "seconds": seconds}
        print(f"fold {fold}: {row}: AUC {rows[row]['success_auc']:.3f} ({seconds:.0f} s)",
              flush=True)
    return rows


def refit(steps: int, train: TrackingSequences, test: TrackingSequences, seed: int,
          args: argparse.Namespace, *task_args: Any, **task_kwargs: Any) -> dict[str, float]:
    """Train afresh on every training sequence for the validation-chosen ``steps``; test scores.

    The usual last step of model selection on a held-out split: the validation sequences
    chose the number of steps, and now add 20 % more training data. ``task_kwargs`` should hold
    the grid winner on the whole training fold (not the inner one).
    """
    task = seeded_task(seed, *task_args, **task_kwargs)
    seconds = (train_task(task, train, steps, args.window, args.batch_size, seed,
                          balanced=args.balanced, tracker_dropout=args.tracker_dropout)
               if steps > 0 else 0.0)
    return {**bl.score_sequences(task_fuser(task), test), "seconds": seconds}


def add_selected_row(rows: dict[str, dict], variants: Sequence[str]) -> str | None:
    """Add the :data:`SELECTED` row to one fold's ``rows``; returns the chosen variant.

    The variant among ``variants`` with the best validation AUC (the first on ties); its
    seconds are those of all the candidates. Nothing when fewer than two have a validation AUC.
    """
    scored = [name for name in variants if "val_auc" in rows.get(name, {})]
    if len(scored) < 2:
        return None
    chosen = max(scored, key=lambda name: rows[name]["val_auc"])
    rows[SELECTED] = {**rows[chosen], "seconds": sum(rows[n]["seconds"] for n in scored)}
    return chosen


DATA_SETTINGS = ("root", "split", "folds", "seed", "top", "synthetic_sequences",
                 "synthetic_length", "synthetic_trackers")
"""Options that fix the data and folds: runs merge only when they agree on all of them."""

GRID_SETTINGS = ("motion_scales", "kernels", "alphas", "consensus_start")
"""Options that change the grid-search rows without changing their names: every run with a
grid search (all but ``--baselines-only`` runs) must agree on them."""

LEARNED_SETTINGS = ("steps", "window", "batch_size", "val_fraction", "eval_every", "balanced",
                    "weighted_reference", "temporal", "feature_width", "dilations", "context",
                    "ensemble", "box_loss", "tracker_dropout")
"""Options that change the learned rows without changing their names: every run that trains
learned variants must agree on them."""


def check_mergeable(runs: Sequence[dict[str, Any]], paths: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the option when runs to merge differ in a setting.

    Options a run's JSON lacks (written before the option existed) count as their defaults.
    """
    defaults = vars(parse_args([]))

    def setting(run: dict[str, Any], key: str) -> Any:
        return run["args"].get(key, defaults[key])

    groups = {
        DATA_SETTINGS: range(len(runs)),
        GRID_SETTINGS: [i for i, run in enumerate(runs) if not setting(run, "baselines_only")],
        LEARNED_SETTINGS: [i for i, run in enumerate(runs) if setting(run, "variants")
                           and not setting(run, "baselines_only")],
    }
    for keys, group in groups.items():
        for key in keys:
            values = [setting(runs[i], key) for i in group]
            if any(value != values[0] for value in values):
                files = [paths[i] for i in group]
                raise ValueError(
                    f"Cannot merge runs with different `{key}`: {values} in {files}.")


def merge_runs(paths: Sequence[str]) -> tuple[list[dict[str, dict]], list[str], float]:
    """Per-fold union of the rows of several runs' JSON files, e.g. parallel processes.

    The runs must share data, folds and seed, and the runs that train their settings too
    (:func:`check_mergeable`); their common rows then agree (the timings of the later file are
    kept). A run cut short contributes the folds it saved. Returns
    the folds' rows in fold order (with :data:`SELECTED` recomputed over all variants), the
    variants in order of appearance, and the summed seconds of the runs.
    """
    by_fold: dict[int, dict[str, dict]] = {}
    variants: list[str] = []
    seconds = 0.0
    runs = [json.loads(Path(path).read_text()) for path in paths]
    check_mergeable(runs, paths)
    for run in runs:
        args, seconds = run["args"], seconds + run["seconds"]
        folds = args["only_folds"] if args["only_folds"] is not None else range(args["folds"])
        variants += [name for name in args["variants"] if name not in variants]
        for fold, rows in zip(folds, run["folds"], strict=False):
            by_fold.setdefault(fold, {}).update(
                {name: row for name, row in rows.items() if name != SELECTED})
    merged = [by_fold[fold] for fold in sorted(by_fold)]
    for rows in merged:
        add_selected_row(rows, variants)
    return merged, variants, seconds


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
    parser.add_argument("--window", type=int, default=32,
                        help="frames per training window (0: whole sequences, padded per batch)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS),
                        choices=[*VARIANTS, *TUNING, *ABLATIONS])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--consensus-start", action="store_true",
                        help="start the solver at the unweighted consensus (first OTB run)")
    parser.add_argument("--weighted-reference", action="store_true",
                        help="network features against the base-weighted median of trackers")
    parser.add_argument("--temporal", type=int, default=0,
                        help="kernel of the network's temporal convolutions (0: none)")
    parser.add_argument("--feature-width", type=int, default=9,
                        help="moving-average window of the network's features in frames (the "
                             "far-agreement average uses 4 × width + 1)")
    parser.add_argument("--dilations", type=int, nargs="+", default=[1, 4],
                        help="dilations of the network's temporal convolutions")
    parser.add_argument("--selector", action="store_true",
                        help="add the supervised per-frame selector baseline (trust: the grid "
                        "winner's weights with --weighted-reference)")
    parser.add_argument("--refit", action="store_true",
                        help="with --val-fraction: also retrain each learned variant on the "
                        "whole training fold for the validation-chosen number of steps")
    parser.add_argument("--context", action="store_true",
                        help="pool the network's features over time and over trackers")
    parser.add_argument("--val-fraction", type=float, default=0.0,
                        help="share of training sequences held out for checkpoint selection")
    parser.add_argument("--eval-every", type=int, default=50,
                        help="steps between validation scores (with --val-fraction)")
    parser.add_argument("--ensemble", type=int, default=1,
                        help="train this many models per variant (seeds differ) and add a row "
                             "that averages their fused tracks")
    parser.add_argument("--motion-scales", type=float, nargs="*", default=[],
                        help="robust-smoothness scales γ the grid searches tried besides "
                             "quadratic smoothness (the learned energies start from the winner)")
    parser.add_argument("--kernels", nargs="+", default=["cauchy"], choices=list(KERNELS),
                        help="robust families of the data term for the grid search to choose "
                             "from (the learned energies start from the winner)")
    parser.add_argument("--alphas", type=float, nargs="+", default=list(GRID_ALPHAS),
                        help="smoothness multipliers α × (1, 10) for the grid search (the "
                             "learned energies start from the winner)")
    parser.add_argument("--balanced", action="store_true",
                        help="draw training windows so that every sequence is equally likely")
    parser.add_argument("--box-loss", default="giou", choices=["giou", "iou"],
                        help="training loss of the learned variants: 1 − GIoU or 1 − IoU")
    parser.add_argument("--tracker-dropout", type=float, default=0.0,
                        help="probability of removing each tracker from a training window "
                             "(augmentation; validation and test sequences stay whole)")
    parser.add_argument("--baselines-only", action="store_true",
                        help="only the baselines that need no energy (no grid search, no "
                             "training); merge with a full run's --out for one table")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write per-fold scores as JSON here")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="instead of running, merge the --out files of runs of other "
                             "folds or variants (same data and seed) and print the table")
    parser.add_argument("--synthetic-sequences", type=int, default=20)
    parser.add_argument("--synthetic-length", type=int, default=200)
    parser.add_argument("--synthetic-trackers", type=int, default=6)
    args = parser.parse_args(argv)
    if args.window < 0:
        parser.error(f"--window must be >= 0 (0: whole sequences), got {args.window}")
    if args.ensemble < 1:
        parser.error(f"--ensemble must be >= 1, got {args.ensemble}")
    try:
        check_tracker_dropout(args.tracker_dropout)
    except ValueError as error:
        parser.error(f"--tracker-dropout: {error}")
    try:
        check_alphas(args.alphas)
    except ValueError as error:
        parser.error(f"--alphas: {error}")
    if any(not scale > 0 for scale in args.motion_scales):
        parser.error(f"--motion-scales must be > 0, got {args.motion_scales}")
    if args.refit and not args.val_fraction > 0:
        parser.error(f"--refit needs --val-fraction > 0 (it reuses the steps chosen on the "
                     f"validation split), got --val-fraction {args.val_fraction}")
    return args


def main(argv: Sequence[str] | None = None) -> str:
    """Run the cross-validation, print and return the table."""
    args = parse_args(argv)
    if args.baselines_only:
        args.variants = []
    if args.merge:
        merged, args.variants, seconds = merge_runs(args.merge)
        save(args.out, args, merged, seconds)
        table = format_table(summarise(merged))
        print(table)
        print(f"{len(merged)} folds merged from {len(args.merge)} runs, {seconds:.0f} s in all")
        return table
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
