"""``lightning-energy bench pose``: a training step of the multi-view pose energy, and Theseus's.

For each batch size: the forward solve (Levenberg–Marquardt, exactly ``--steps`` iterations,
float64), the backward pass of L = Σ‖x*‖², and a whole training step (forward, backward, an Adam
step on the energy parameters), in milliseconds (median of ``--repeats`` after a warm-up), and
memory (:mod:`~lightning_energy.bench.timing` conventions: CUDA peak, or on CPU the bytes the
autograd graph saves for backward). Rows: this library with its implicit adjoint (Gauss–Newton
Hessian, ``--damping``) and unrolled; with ``--compare theseus`` the same problem in Theseus
(:mod:`~lightning_energy.bench.theseus_pose`) with its implicit and unrolled backward;
``--backwards`` keeps one of the two kinds.

The ``agreement`` record compares the two libraries' gradients on the folded least-squares form
of the problem (float64, Gauss–Newton Hessian, damping 0 on both sides, ``--agreement-steps``
iterations): the relative difference ‖g − g_Theseus‖ / ‖g_Theseus‖ over every energy parameter.
Where Theseus cannot be imported, the command says why and runs this library's rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_energy.adjoints import ImplicitAdjoint, UnrolledAdjoint
from lightning_energy.bench.pose_problem import (
    DATA_ROOT,
    PPCA_ROOT,
    FoldedPoseEnergy,
    PoseProblem,
    pose_problem,
)
from lightning_energy.bench.theseus_pose import TheseusPose, theseus_unavailable
from lightning_energy.bench.timing import graph_saved_bytes, synchronize
from lightning_energy.layer import EnergyLayer
from lightning_energy.solvers import LevenbergMarquardt

BACKWARDS = ("implicit", "unrolled")
#: Problems per solve chunk on a CPU (cache-sized; a GPU solves the batch at once).
CPU_CHUNK = 384


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``bench pose``."""
    parser = argparse.ArgumentParser(prog="lightning-energy bench pose")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 256, 1024])
    parser.add_argument("--steps", type=int, default=10, help="LM iterations (exactly)")
    parser.add_argument("--damping", type=float, default=1e-2, help="implicit adjoint's λ")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median)")
    parser.add_argument("--compare", choices=["none", "theseus"], default="none")
    parser.add_argument("--backwards", nargs="+", choices=BACKWARDS, default=list(BACKWARDS),
                        help="backward rules to time (Theseus's unrolled graph outgrows a "
                             "24 GB machine at B = 1,024)")
    parser.add_argument("--theseus-max-batch", type=int, default=1024,
                        help="largest batch Theseus is timed on (it is slow)")
    parser.add_argument("--agreement-batch", type=int, default=8)
    parser.add_argument("--agreement-steps", type=int, default=50)
    parser.add_argument("--data-root", default=DATA_ROOT)
    parser.add_argument("--ppca-root", default=PPCA_ROOT)
    parser.add_argument("--format", choices=["table", "json"], default="table")
    return parser


def _time(forward: Callable[[], Tensor], device: torch.device, repeats: int,
          parameters: Sequence[Tensor]) -> dict[str, float]:
    """Median forward, backward and training-step ms of ``forward`` (loss Σ x²), and memory."""
    optimizer = torch.optim.Adam(parameters, lr=0.0)  # lr 0: time the step, keep the problem
    fwd, bwd, step = [], [], []
    for i in range(repeats + 1):  # the first round is a warm-up
        optimizer.zero_grad()
        synchronize(device)
        start = time.perf_counter()
        loss = forward().pow(2).sum()
        synchronize(device)
        middle = time.perf_counter()
        loss.backward()
        synchronize(device)
        after = time.perf_counter()
        optimizer.step()
        synchronize(device)
        if i:
            fwd.append((middle - start) * 1e3)
            bwd.append((after - middle) * 1e3)
            step.append((time.perf_counter() - start) * 1e3)
    return {"forward_ms": statistics.median(fwd), "backward_ms": statistics.median(bwd),
            "step_ms": statistics.median(step), "peak_memory_mb": _memory(forward, device)}


def _memory(forward: Callable[[], Tensor], device: torch.device) -> float:
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        forward().pow(2).sum().backward()
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    loss = forward().pow(2).sum()
    saved = graph_saved_bytes(loss) / 2**20
    loss.backward()
    return saved


def our_layer(problem: PoseProblem, steps: int, backward: str, damping: float,
              device: torch.device) -> EnergyLayer:
    """This library's layer for ``problem``: LM for exactly ``steps`` steps, float64."""
    adjoint = (ImplicitAdjoint(damping, hessian="gauss_newton") if backward == "implicit"
               else UnrolledAdjoint())
    return EnergyLayer(problem.energy, LevenbergMarquardt(steps, tol=0.0, dtype="float64"),
                       adjoint, nonconverged="warn",
                       chunk_size=CPU_CHUNK if device.type == "cpu" else None)


def rows_for(batch: int, args: argparse.Namespace, theseus: bool) -> list[dict[str, Any]]:
    """This library's rows (and Theseus's when ``theseus``) at one batch size."""
    device = torch.device(args.device)
    problem = pose_problem(batch, args.data_root, args.ppca_root, device)
    common = {"batch_size": batch, "steps": args.steps, "dtype": "float64",
              "device": str(device), "data": problem.source}
    params = [p for p in problem.energy.parameters() if p.requires_grad]
    rows = []
    for backward in args.backwards:
        layer = our_layer(problem, args.steps, backward, args.damping, device)

        def ours(layer: EnergyLayer = layer) -> Tensor:
            return layer(problem.inputs, problem.x0).x

        timing = _time(ours, device, args.repeats, params)
        rows.append({"library": "lightning_energy", "backward": backward,
                     "hessian": "gauss_newton" if backward == "implicit" else "-",
                     **common, **timing})
        if theseus and batch <= args.theseus_max_batch:
            solver = TheseusPose(problem, args.steps, damping=1e-3)

            def theirs(solver: TheseusPose = solver, mode: str = backward) -> Tensor:
                return solver(mode)

            timing = _time(theirs, device, args.repeats if batch < 256 else 1, params)
            rows.append({"library": "theseus", "backward": backward,
                         "hessian": "gauss_newton" if backward == "implicit" else "-",
                         **common, **timing})
    return rows


def agreement(args: argparse.Namespace) -> dict[str, Any]:
    """Relative difference of the two libraries' gradients (see the module docstring)."""
    device = torch.device(args.device)
    problem = pose_problem(args.agreement_batch, args.data_root, args.ppca_root, device)
    params = [p for p in problem.energy.parameters() if p.requires_grad]
    folded = FoldedPoseEnergy(problem.energy)
    layer = EnergyLayer(folded, LevenbergMarquardt(args.agreement_steps, tol=0.0,
                                                   dtype="float64"),
                        ImplicitAdjoint(0.0, hessian="gauss_newton"), nonconverged="warn")
    ours = _gradient(lambda: layer(problem.inputs, problem.x0).x, params)
    theirs = _gradient(lambda: TheseusPose(problem, args.agreement_steps, 1e-3)("implicit"),
                       params)
    diff = float((ours - theirs).norm() / theirs.norm())
    cosine = float(torch.nn.functional.cosine_similarity(ours, theirs, dim=0))
    return {"library": "agreement", "backward": "implicit", "hessian": "gauss_newton",
            "batch_size": args.agreement_batch, "steps": args.agreement_steps,
            "dtype": "float64", "device": str(device), "data": problem.source,
            "relative_difference": diff, "cosine": cosine}


def _gradient(forward: Callable[[], Tensor], params: Sequence[Tensor]) -> Tensor:
    grads = torch.autograd.grad(forward().pow(2).sum(), params, allow_unused=True)
    return torch.cat([torch.zeros_like(p).flatten() if g is None else g.flatten()
                      for p, g in zip(params, grads, strict=True)])


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str | None]:
    """The records, and why Theseus was left out (None when it was compared or not asked for)."""
    missing = theseus_unavailable() if args.compare == "theseus" else None
    theseus = args.compare == "theseus" and missing is None
    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tol=0: every solve "did not converge"
        for batch in args.batch_sizes:
            records += rows_for(batch, args, theseus)
        if theseus:
            records.append(agreement(args))
    return records, missing


def format_table(records: list[dict[str, Any]]) -> str:
    """Plain-text table; Theseus rows with their ratio to this library's row of the same kind."""
    ours = {(r["batch_size"], r["backward"]): r for r in records
            if r["library"] == "lightning_energy"}
    head = (f"{'library':<18}{'backward':<10}{'B':>7}{'fwd ms':>11}{'bwd ms':>11}"
            f"{'step ms':>11}{'memory MB':>11}{'step / ours':>13}")
    lines = [head, "-" * len(head)]
    for r in records:
        if r["library"] == "agreement":
            lines.append(f"gradient agreement (B={r['batch_size']}, float64, Gauss-Newton, λ=0): "
                         f"relative difference {r['relative_difference']:.2e}, "
                         f"cosine {r['cosine']:.9f}")
            continue
        base = ours[(r["batch_size"], r["backward"])]
        lines.append(f"{r['library']:<18}{r['backward']:<10}{r['batch_size']:>7}"
                     f"{r['forward_ms']:>11.1f}{r['backward_ms']:>11.1f}{r['step_ms']:>11.1f}"
                     f"{r['peak_memory_mb']:>11.2f}{r['step_ms'] / base['step_ms']:>13.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Entry point: parse, run; returns the table (or JSON) that the command prints."""
    args = build_parser().parse_args(argv)
    records, missing = run(args)
    if args.format == "json":
        skipped = [] if missing is None else [{"library": "theseus", "skipped": missing}]
        return json.dumps(records + skipped, indent=2)
    note = "" if missing is None else f"\ntheseus rows left out: {missing}"
    return format_table(records) + note
