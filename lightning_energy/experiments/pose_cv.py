"""Leave-one-subject-out study of the learned multi-view pose energy, baselines and ablations.

Run from the repository root (data in ``../shared/data``)::

    OMP_NUM_THREADS=1 python -m lightning_energy.experiments.pose_cv --out runs/pose_cv
    OMP_NUM_THREADS=1 python -m lightning_energy.experiments.pose_cv --folds S8 --ablations \
        --out runs/pose_ablation

For each held-out subject the others are the training subjects; the first of them doubles as
the validation subject of the grid-search baseline. Frames are subsampled (``--train-stride``,
``--eval-stride``; stored frames are 10 Hz). Writes ``results.json`` and ``results.md`` to
``--out`` and prints the tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lightning_energy.adjoints.base import Adjoint
from lightning_energy.adjoints.implicit import ImplicitAdjoint
from lightning_energy.adjoints.unrolled import UnrolledAdjoint
from lightning_energy.baselines.pose import (
    FrameErrors,
    Predictor,
    detected_joints,
    dlt_poses,
    evaluate_poses,
    grid_search,
    load_authors_parameters,
    refit_ppca_model,
)
from lightning_energy.data.h36m import load_h36m
from lightning_energy.data.pose_batch import PoseArrays, PoseBatch
from lightning_energy.energies.pose import PARAMETER_GROUPS, MultiViewPoseEnergy
from lightning_energy.metrics.functional import mpjpe
from lightning_energy.solvers.gauss_newton import LevenbergMarquardt
from lightning_energy.tasks.pose import (
    SHAPE_PARAMETERS,
    MultiViewPoseTask,
    component_weights,
    lowest_energy,
)

SHAPE_GROUP = list(SHAPE_PARAMETERS)
OTHER_GROUP = ["log_weights", "log_prior", "kernel.log_scale", "camera_rotation",
               "log_scale_offset", "log_scale_prior"]  # fmt: skip


CPU_CHUNK = 384
"""Problems per solve chunk on CPU (``build_pose_layer``); a GPU solves the batch at once."""


def make_energy(args: argparse.Namespace, **overrides: Any) -> MultiViewPoseEnergy:
    """The 3-component, 25-basis energy from the authors' PPCA file, float64."""
    options: dict[str, Any] = {"ppca_root": args.ppca_root, "num_components": 3}
    options.update(overrides)
    return MultiViewPoseEnergy(**options).double()


def device_of(task: MultiViewPoseTask) -> torch.device:
    """The device of the task's energy tensors."""
    return next(itertools.chain(task.parameters(), task.buffers())).device


class SolvedPredictor:
    """CPU batch → predicted poses (B, J, 3), mm, on the CPU (solved on the task's device).

    Counts the frames whose solve converged, so that every table row built from its predictions
    can say how many were not (they are still scored: a method must answer every frame).
    """

    def __init__(self, task: MultiViewPoseTask) -> None:
        self.task, self.device = task, device_of(task)
        self.frames, self.converged = 0, 0

    def __call__(self, batch: PoseBatch) -> torch.Tensor:  # noqa: D102
        solution = self.task(batch.to(self.device))
        self.frames += len(batch)
        self.converged += int(solution.converged.sum())
        return solution.x.cpu()


def predictor(task: MultiViewPoseTask) -> SolvedPredictor:
    """A :class:`SolvedPredictor` of ``task``."""
    return SolvedPredictor(task)


def task_for(energy: MultiViewPoseEnergy, args: argparse.Namespace,
             adjoint: Adjoint | None = None,
             alternate: list[list[str]] | None = None,
             component_temperature: float | None = None) -> MultiViewPoseTask:
    """A pose task around ``energy`` (LM with ``args.solver_steps``) on ``args.device``."""
    solver = LevenbergMarquardt(max_steps=args.solver_steps, tol=1e-4, dtype="float64")
    chunk = args.chunk_size or (CPU_CHUNK if str(args.device) == "cpu" else None)
    task = MultiViewPoseTask(energy, solver=solver, adjoint=adjoint, alternate=alternate,
                             energy_lr=args.lr, shape_lr=args.shape_lr, chunk_size=chunk,
                             component_temperature=component_temperature)
    return task.to(args.device)


def optimizer_for(task: MultiViewPoseTask) -> torch.optim.Optimizer:
    """Adam over the task's parameter groups (``--shape-lr`` for μ, e, σ, ``--lr`` else)."""
    return torch.optim.Adam(task.parameter_groups())


def train(task: MultiViewPoseTask, arrays: PoseArrays, args: argparse.Namespace) -> dict:
    """Adam on the energy parameters for ``args.steps`` batches; returns time and losses.

    The task's own loss and alternation rule are used; frames are drawn without replacement
    (reshuffled when exhausted) from ``arrays`` with a fixed seed. With ``args.ema`` > 0 the
    task ends with the exponential moving average of its energy parameters (decay ``args.ema``),
    bias-corrected so that the untrained parameters it starts from carry no weight.
    """
    optimizer = optimizer_for(task)
    # Cosine decay to 10% lets a larger initial rate settle; constant when ``--cosine`` is off.
    decay = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: 0.55 + 0.45 * math.cos(math.pi * k / args.steps) if args.cosine
        else 1.0)
    device = device_of(task)
    gen = np.random.default_rng(args.seed)
    order, losses, start = gen.permutation(len(arrays)), [], time.perf_counter()
    params = dict(task.pose_energy.named_parameters())
    average = {n: torch.zeros_like(p.detach()) for n, p in params.items()} if args.ema else {}
    for step in range(args.steps):
        if (step + 1) * args.batch_size > len(order):
            order = np.concatenate([order, gen.permutation(len(arrays))])
        batch = arrays.to_batch(order[step * args.batch_size:(step + 1) * args.batch_size])
        batch = batch.to(device)
        loss = task.loss(task(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        if task.alternate:
            active = set(task.alternate[step % len(task.alternate)])
            for name, param in task.pose_energy.named_parameters():
                param.grad = param.grad if name in active else None
        optimizer.step()
        decay.step()
        for name, value in average.items():
            value.lerp_(params[name].detach(), 1.0 - args.ema)
        losses.append(float(loss.detach()))
    with torch.no_grad():
        for name, value in average.items():
            params[name].copy_(value / (1.0 - args.ema**args.steps))
    return {"seconds": time.perf_counter() - start, "losses": losses}


def evaluate(name: str, predict: Predictor, arrays: PoseArrays, out: dict, args: argparse.Namespace,
             extra: dict | None = None, **kw: Any) -> None:
    """Evaluate one method and store its summary under ``out[name]``."""
    errors: FrameErrors = evaluate_poses(predict, arrays, batch_size=args.eval_batch_size, **kw)
    if isinstance(predict, SolvedPredictor):  # DLT has no solve to converge
        extra = {**(extra or {}), "converged": predict.converged / max(predict.frames, 1)}
    out[name] = {"mpjpe": float(errors.mpjpe.mean()), "pa_mpjpe": float(errors.pa_mpjpe.mean()),
                 "mpjpe16": float(errors.mpjpe16.mean()), "by_action": errors.by_action(),
                 "eval_seconds": errors.seconds, **(extra or {})}  # fmt: skip
    write_results(args)
    print(f"  {name:30s} MPJPE {out[name]['mpjpe']:6.1f}  PA {out[name]['pa_mpjpe']:6.1f}  "
          f"16j {out[name]['mpjpe16']:6.1f}  ({errors.seconds:.0f} s eval) "
          f"{ {k: round(v, 3) if isinstance(v, float) else v for k, v in (extra or {}).items()} }",
          flush=True)


def trained(name: str, energy: MultiViewPoseEnergy, train_set: PoseArrays,
            test_set: PoseArrays, args: argparse.Namespace, out: dict,
            **kw: Any) -> MultiViewPoseTask | None:
    """Train a task around ``energy`` (or, with ``--load``, load it) and evaluate it.

    Returns the task, or None when training failed (the failure is recorded in ``out``).
    """
    task = task_for(energy, args, **kw)
    state_name = f"{name.split(' ')[0]}_{args.held}.pt"
    if args.load:
        task.load_state_dict(torch.load(Path(args.load) / state_name, map_location=args.device))
        evaluate(name, predictor(task), test_set, out, args,
                 {"loaded": str(Path(args.load) / state_name)})
        return task
    try:
        info = train(task, train_set, args)
    except (RuntimeError, torch.OutOfMemoryError) as error:  # report, keep going
        out[name] = {"error": str(error)[:200]}
        print(f"  {name}: failed: {error}", flush=True)
        return None
    extra = {"train_seconds": info["seconds"], "loss_first": info["losses"][0],
             "loss_last": float(np.mean(info["losses"][-5:]))}
    evaluate(name, predictor(task), test_set, out, args, extra)
    if args.save:
        torch.save(task.state_dict(), Path(args.out) / state_name)
    return task


TEMPERATURES = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
"""Component temperatures τ tried by ``--component-temperature auto`` (besides the argmin)."""


def choose_temperature(task: MultiViewPoseTask, arrays: PoseArrays,
                       args: argparse.Namespace) -> tuple[float | None, dict[str, float]]:
    """The τ of :data:`TEMPERATURES`, or None (the argmin), of lowest MPJPE on ``arrays``.

    Each frame is solved once; every candidate reweights the same component solutions.
    Returns the choice and the MPJPE of every candidate (key ``"argmin"`` for None).
    """
    poses, values, truth = [], [], []
    with torch.no_grad():
        for start in range(0, len(arrays), args.eval_batch_size):
            batch = arrays.to_batch(np.arange(start, min(start + args.eval_batch_size,
                                                         len(arrays))))
            inputs = task.energy_inputs(batch.to(device_of(task)))
            pose, value = task.component_poses(task.layer(inputs), inputs)
            poses.append(pose.cpu())
            values.append(value.cpu())
            truth.append(batch.joints3d.to(torch.float64))
    pose, value, target = torch.cat(poses), torch.cat(values), torch.cat(truth)
    scores: dict[str, float] = {}
    for temperature in (None, *TEMPERATURES):
        if temperature is None:
            predicted = pose[torch.arange(len(pose)), lowest_energy(value)]
        else:
            weights = component_weights(value, temperature)
            predicted = (weights[..., None, None] * pose).sum(1)
        scores["argmin" if temperature is None else str(temperature)] = float(
            mpjpe(predicted, target))
    choice = min(scores, key=scores.__getitem__)
    return (None if choice == "argmin" else float(choice)), scores


def soft_components(task: MultiViewPoseTask, name: str, train_set: PoseArrays,
                    test_set: PoseArrays, args: argparse.Namespace, out: dict) -> None:
    """Evaluate ``task`` with the component temperature of ``--component-temperature``.

    ``auto`` chooses it on every 64th training frame (:func:`choose_temperature`).
    """
    scores: dict[str, float] = {}
    if args.component_temperature == "auto":
        subset = train_set.select(np.arange(0, len(train_set), 64))
        temperature, scores = choose_temperature(task, subset, args)
    else:
        temperature = float(args.component_temperature)
    trained_with, task.component_temperature = task.component_temperature, temperature
    label = "argmin" if temperature is None else f"τ = {temperature:g}"
    evaluate(f"{name}, soft components ({label})", predictor(task), test_set, out, args,
             {"temperature": temperature, "train_scores": scores})
    task.component_temperature = trained_with


def baselines(args: argparse.Namespace, train_set: PoseArrays, val_set: PoseArrays,
              test_set: PoseArrays, out: dict) -> None:
    """DLT, untrained, authors', re-fitted PPCA, grid-searched and λ = 0 on ``test_set``."""
    evaluate("DLT (16 joints)", dlt_poses, test_set, out, args, joint_mask=detected_joints())
    untrained = task_for(make_energy(args), args)
    evaluate("untrained PPCA (Tome)", predictor(untrained), test_set, out, args)
    authors = make_energy(args)
    load_authors_parameters(authors, args.ppca_root)
    evaluate("authors' trained parameters", predictor(task_for(authors, args)), test_set, out,
             args)
    weights_only = make_energy(args)
    load_authors_parameters(weights_only, args.ppca_root, model=False)
    evaluate("authors' joint weights only", predictor(task_for(weights_only, args)), test_set,
             out, args)
    start = time.perf_counter()
    refit = make_energy(args)
    refit.set_model(refit_ppca_model(train_set, 3, 25))
    evaluate("PPCA re-fit (closed form)", predictor(task_for(refit, args)), test_set, out, args,
             {"train_seconds": time.perf_counter() - start})
    start = time.perf_counter()
    (lam, delta), _ = grid_search(
        lambda lam, delta: predictor(task_for(make_energy(args, prior_weight=lam,
                                                          kernel_scale=delta), args)), val_set)
    evaluate("grid search (λ, δ on validation)",
             predictor(task_for(make_energy(args, prior_weight=lam, kernel_scale=delta), args)),
             test_set, out, args, {"train_seconds": time.perf_counter() - start,
                                   "lambda": lam, "delta": delta})
    evaluate("λ_prior = 0", predictor(task_for(make_energy(args, prior_weight=0.0), args)),
             test_set, out, args)


def ablations(args: argparse.Namespace, train_set: PoseArrays, test_set: PoseArrays,
              out: dict) -> None:
    """Each parameter group alone, joint vs alternating, damping grid, the other Hessian."""
    for group in PARAMETER_GROUPS:
        trained(f"learn {group} only", make_energy(args, learn=[group]), train_set, test_set,
                args, out, adjoint=ImplicitAdjoint(damping=1e-2, hessian=args.hessian))
    trained("learn all, alternating", make_energy(args), train_set, test_set, args, out,
            alternate=[SHAPE_GROUP, OTHER_GROUP],
            adjoint=ImplicitAdjoint(damping=1e-2, hessian=args.hessian))
    for damping in (0.0, 1e-3, 1e-1, "auto"):
        trained(f"learn all, damping {damping}", make_energy(args), train_set, test_set, args,
                out, adjoint=ImplicitAdjoint(damping=damping, hessian=args.hessian))
    other = "exact" if args.hessian == "gauss_newton" else "gauss_newton"
    trained(f"learn all, {other} Hessian", make_energy(args), train_set, test_set, args, out,
            adjoint=ImplicitAdjoint(damping=1e-2, hessian=other))


def run_fold(held: str, subjects: Sequence[str], args: argparse.Namespace) -> dict:
    """Baselines, the learned energy (and, with ``--ablations``, the ablations) for one fold."""
    others = [s for s in subjects if s != held]
    args.held = held
    root = args.data_root
    train_set = load_h36m(root, others, frame_stride=args.train_stride)
    val_set = load_h36m(root, others[:1], frame_stride=args.val_stride)
    test_set = load_h36m(root, [held], frame_stride=args.eval_stride)
    print(f"fold {held}: train {others} ({len(train_set)} frames), test {len(test_set)} frames",
          flush=True)
    methods: dict[str, Any] = {}
    out: dict[str, Any] = {"test_frames": len(test_set), "train_frames": len(train_set),
                           "methods": methods}
    args.results[held] = out  # filled in as methods finish; written after each (``evaluate``)
    if not args.skip_baselines:
        baselines(args, train_set, val_set, test_set, methods)
    name = "learned (implicit, all groups)" if args.damping == 1e-2 else \
        f"learned (implicit, all groups, damping {args.damping})"
    if args.train_temperature is not None:
        name = f"{name[:-1]}, trained with soft components τ = {args.train_temperature:g})"
    if not args.skip_implicit:
        task = trained(name, make_energy(args), train_set, test_set, args, methods,
                       adjoint=ImplicitAdjoint(damping=args.damping, hessian=args.hessian),
                       component_temperature=args.train_temperature)
        if task is not None and args.component_temperature is not None:
            soft_components(task, name, train_set, test_set, args, methods)
    if args.unrolled:
        trained("learned (UnrolledAdjoint)", make_energy(args), train_set, test_set, args,
                methods, adjoint=UnrolledAdjoint())
    if args.ablations:
        ablations(args, train_set, test_set, methods)
    return out


SPEED_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("autograd Jacobian, whole batch, finished samples stepped",
     {"closed_form": False, "compact": False, "chunk": None}),
    ("+ finished samples skipped", {"closed_form": False, "compact": True, "chunk": None}),
    ("+ closed-form Jacobian", {"closed_form": True, "compact": True, "chunk": None}),
    (f"+ chunks of {CPU_CHUNK} problems",
     {"closed_form": True, "compact": True, "chunk": CPU_CHUNK}),
)  # fmt: skip
"""The solve's speed features, switched on one after the other by ``--bench-ablation``."""


def bench(args: argparse.Namespace, frames: int = 1024) -> list[dict]:
    """Time forward (solve) and backward of the default task on ``frames`` S1 frames × 4 views.

    With ``args.bench_ablation`` the same batch is timed once per :data:`SPEED_VARIANTS` row, in
    one process; every row must give the same loss (they change the cost, not the result).
    """
    arrays = load_h36m(args.data_root, ["S1"], max_frames_per_subject=frames)
    batch = arrays.to_batch().to(args.device)
    task = task_for(make_energy(args), args)
    sync = torch.cuda.synchronize if batch.joints3d.is_cuda else (lambda: None)
    variants = SPEED_VARIANTS if args.bench_ablation else (("default", None),)
    rows = []
    for name, switches in variants:
        if switches is not None:
            task.pose_energy.closed_form_jacobian = switches["closed_form"]
            task.layer.solver.compact = switches["compact"]
            task.layer.chunk_size = switches["chunk"]
        for _ in range(2 if batch.joints3d.is_cuda else 1):  # the first CUDA call sets up
            task.zero_grad()
            sync()
            start = time.perf_counter()
            solution = task(batch)
            loss = task.loss(solution, batch)
            sync()
            middle = time.perf_counter()
            loss.backward()
            sync()
            end = time.perf_counter()
        out = {"variant": name, "frames": len(batch), "device": str(batch.joints3d.device),
               "chunk_size": task.layer.chunk_size, "forward_s": middle - start,
               "backward_s": end - middle, "solver_steps": args.solver_steps,
               "converged": float(solution.converged.double().mean()),
               "steps_mean": float(solution.num_steps.double().mean()),
               "loss": float(loss.detach())}
        out["epoch_s_73279_frames"] = (end - start) * 73279 / len(batch)
        print(json.dumps(out), flush=True)
        rows.append(out)
    spread = max(r["loss"] for r in rows) - min(r["loss"] for r in rows)
    if spread > 1e-6 * abs(rows[0]["loss"]):
        raise RuntimeError(f"The speed variants changed the loss by {spread:.3g}.")
    return rows


def compare_adjoints(args: argparse.Namespace) -> dict:
    """Loss gradients of the implicit adjoint (GN / exact Hessian, λ = 1e-2 / 0) and unrolling.

    One batch of ``args.compare_adjoints`` S1 frames, the energy as built (``--state`` loads a
    trained one); reports each rule's time and its gradient's cosine similarity and relative
    difference to the unrolled gradient (all energy parameters, flattened).
    """
    arrays = load_h36m(args.data_root, ["S1"], frame_stride=64)
    batch = arrays.to_batch(np.arange(min(args.compare_adjoints, len(arrays))))
    batch = batch.to(args.device, dtype=torch.float64)  # a float64 loss, for the differences
    rules: dict[str, Adjoint] = {
        "implicit GN λ=1e-2": ImplicitAdjoint(1e-2, hessian="gauss_newton"),
        "implicit GN λ=0": ImplicitAdjoint(0.0, hessian="gauss_newton"),
        "implicit exact λ=1e-2": ImplicitAdjoint(1e-2, hessian="exact"),
        "implicit exact λ=0": ImplicitAdjoint(0.0, hessian="exact"),
        "unrolled": UnrolledAdjoint(),
    }
    grads: dict[str, torch.Tensor] = {}
    out: dict[str, Any] = {}
    named: dict[str, dict[str, torch.Tensor]] = {}
    for name, adjoint in rules.items():
        task = task_for(make_energy(args), args, adjoint=adjoint)
        if args.state:
            task.load_state_dict(torch.load(args.state, map_location=args.device))
        start = time.perf_counter()
        solution = task(batch)
        loss = task.loss(solution, batch)
        loss.backward()
        grads[name] = torch.cat([p.grad.flatten() for p in task.parameters() if p.grad is not None])
        named[name] = {k: p.grad for k, p in task.pose_energy.named_parameters()
                       if k in SCALARS and p.grad is not None}  # fmt: skip
        out[name] = {"seconds": time.perf_counter() - start, "loss": float(loss.detach()),
                     "converged": float(solution.converged.double().mean())}
    ref = grads["unrolled"]
    for name, grad in grads.items():
        out[name]["cosine_to_unrolled"] = float(torch.nn.functional.cosine_similarity(grad, ref, 0))
        out[name]["relative_difference"] = float((grad - ref).norm() / ref.norm())
    out["central differences"] = scalar_central_differences(args, task, batch, named)
    for name in rules:
        out[name]["scalars"] = {k: float(v) for k, v in named[name].items()}
    print(json.dumps(out, indent=1), flush=True)
    return out


#: Scalar energy parameters whose loss derivative is also checked by central differences.
SCALARS = ("log_prior", "kernel.log_scale", "log_scale_offset", "log_scale_prior")


def scalar_central_differences(args: argparse.Namespace, task: MultiViewPoseTask, batch: Any,
                               named: dict, eps: float = 1e-5) -> dict[str, float]:
    """dL/dθ of each scalar in :data:`SCALARS` by central differences, solves to ‖∇E‖ ≤ 1e-10."""
    tight = task_for(make_energy(args), args)
    tight.load_state_dict(task.state_dict())
    tight.layer.solver = LevenbergMarquardt(max_steps=300, tol=1e-10, dtype="float64")
    params = dict(tight.pose_energy.named_parameters())
    result = {}
    with torch.no_grad():
        for name in SCALARS:
            if name not in params:
                continue
            losses = []
            for sign in (1.0, -1.0):
                params[name].add_(sign * eps)
                losses.append(float(tight.loss(tight(batch), batch)))
                params[name].sub_(sign * eps)
            result[name] = (losses[0] - losses[1]) / (2 * eps)
    return result


def write_results(args: argparse.Namespace) -> None:
    """Write ``args.results`` (every finished method of every fold so far) to ``results.json``."""
    options = {k: v for k, v in vars(args).items() if k != "results"}
    (Path(args.out) / "results.json").write_text(json.dumps(
        {"args": options, "folds": args.results}, indent=1))


def markdown(results: dict[str, dict]) -> str:
    """Mean ± std over folds of every method's MPJPE / PA-MPJPE, training time, converged share.

    The converged share is that of the evaluated frames' solves ("–" for methods without one).
    """
    names: list[str] = []
    for fold in results.values():
        names += [n for n in fold["methods"] if n not in names]
    lines = ["| method | MPJPE (mm) | PA-MPJPE (mm) | MPJPE 16 joints | train s | converged "
             "| folds |", "|---|---|---|---|---|---|---|"]
    for name in names:
        rows = [f["methods"][name] for f in results.values()
                if "mpjpe" in f["methods"].get(name, {})]  # fmt: skip
        if not rows:
            continue
        m, p, m16 = (np.array([r[k] for r in rows]) for k in ("mpjpe", "pa_mpjpe", "mpjpe16"))
        secs = np.mean([r.get("train_seconds", 0.0) for r in rows])
        shares = [r["converged"] for r in rows if "converged" in r]
        converged = f"{100 * np.mean(shares):.1f}%" if shares else "–"
        lines.append(f"| {name} | {m.mean():.1f} ± {m.std():.1f} | {p.mean():.1f} ± "
                     f"{p.std():.1f} | {m16.mean():.1f} ± {m16.std():.1f} | {secs:.0f} | "
                     f"{converged} | {len(rows)} |")
    return "\n".join(lines)


def _damping(text: str) -> float | str:
    return text if text == "auto" else float(text)


def _temperature(text: str) -> float | str:
    if text == "auto":
        return text
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a float > 0, got {text!r}")
    return value


def _decay(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a decay in [0, 1), got {text}")
    return value


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default="../shared/data/h36m_multiview_sh")
    parser.add_argument("--ppca-root", default="../shared/data/wibergian_ppca")
    parser.add_argument("--folds", nargs="+", default=["S1", "S5", "S6", "S7", "S8"])
    parser.add_argument("--subjects", nargs="+", default=["S1", "S5", "S6", "S7", "S8"])
    parser.add_argument("--train-stride", type=int, default=8)
    parser.add_argument("--val-stride", type=int, default=128)
    parser.add_argument("--eval-stride", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--shape-lr", type=float, default=None,
                        help="learning rate of μ, e, σ (default: --lr)")
    parser.add_argument("--cosine", action="store_true", help="cosine decay to 10%% of the lr")
    parser.add_argument("--ema", type=_decay, default=0.0,
                        help="end with the exponential moving average of the energy parameters "
                             "(this decay per step; 0: the last iterate)")
    parser.add_argument("--solver-steps", type=int, default=30, help="LM steps per solve")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help=f"problems (frames × components) per solve chunk (default "
                             f"{CPU_CHUNK} on CPU, the whole batch on CUDA)")
    parser.add_argument("--hessian", default="gauss_newton", choices=["gauss_newton", "exact"],
                        help="Hessian of the learned energy's implicit adjoint")
    parser.add_argument("--damping", type=_damping, default=1e-2,
                        help="trust-region damping of the learned energy's adjoint (or 'auto')")
    parser.add_argument("--eval-batch-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablations", action="store_true")
    parser.add_argument("--unrolled", action="store_true",
                        help="also train with UnrolledAdjoint (same settings, seed and batches)")
    parser.add_argument("--skip-implicit", action="store_true",
                        help="leave out the implicit-adjoint learned row (e.g. with --unrolled)")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--save", action="store_true", help="save trained task state_dicts")
    parser.add_argument("--load", default=None, metavar="DIR",
                        help="evaluate the learned (implicit) row's state dicts saved in DIR by "
                             "--save (learned_<fold>.pt) instead of training")
    parser.add_argument("--train-temperature", type=float, default=None,
                        help="train (and evaluate) the learned row with soft components at "
                             "this τ > 0 (MultiViewPoseTask(component_temperature=τ))")
    parser.add_argument("--component-temperature", type=_temperature, default=None,
                        help="also evaluate the learned row averaging the components' poses "
                             "with weights softmax(-E/τ): a τ > 0, or 'auto' (chosen on every "
                             "64th training frame among the argmin and "
                             f"{', '.join(map(str, TEMPERATURES))})")
    parser.add_argument("--bench", action="store_true", help="only time a 1024-frame batch")
    parser.add_argument("--bench-ablation", action="store_true",
                        help="with --bench: time each solver speed feature in turn")
    parser.add_argument("--compare-adjoints", type=int, default=0, metavar="FRAMES",
                        help="only compare implicit and unrolled gradients on FRAMES frames")
    parser.add_argument("--state", default=None, help="task state dict for --compare-adjoints")
    parser.add_argument("--out", default="runs/pose_cv")
    args = parser.parse_args(argv)
    if args.chunk_size is not None and args.chunk_size < 1:
        parser.error(f"--chunk-size must be >= 1, got {args.chunk_size}")
    if args.train_temperature is not None and not args.train_temperature > 0:
        parser.error(f"--train-temperature must be > 0, got {args.train_temperature}")
    if args.skip_implicit and not (args.unrolled or args.ablations):
        parser.error("--skip-implicit leaves nothing to train without --unrolled or --ablations")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the folds, write ``results.json`` / ``results.md`` and print the table."""
    args = parse(argv)
    if args.device == "cpu":
        torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.bench:
        rows = bench(args)
        (out_dir / "bench.json").write_text(json.dumps(rows, indent=1))
        return {"bench": rows}
    if args.compare_adjoints:
        result = compare_adjoints(args)
        (out_dir / "adjoints.json").write_text(json.dumps(result, indent=1))
        return result
    results: dict[str, dict] = {}
    args.results = results
    for held in args.folds:
        run_fold(held, args.subjects, args)
        write_results(args)
    table = markdown(results)
    (out_dir / "results.md").write_text(table + "\n")
    print(table)
    return results


if __name__ == "__main__":
    main()
