"""``lightning-energy bench sequence``: a sequence energy's solve and backward as T grows.

The problem is :class:`~lightning_energy.bench.problems.SequencePoseLikeEnergy` (p = 30 variables
per frame, s = 51 shared, n = 30 T + 51), B windows of T frames, solved for exactly ``--steps``
Levenberg–Marquardt steps (float64) and differentiated by the implicit adjoint (loss Σ‖x*‖²,
λ = 1e-2), two ways:

* ``block_arrow``: :class:`~lightning_energy.BlockArrowLevenbergMarquardt` and
  ``ImplicitAdjoint(linear_solver=BlockArrow())`` — block-tridiagonal Cholesky with a Schur
  complement, forward and backward; linear in T;
* ``dense`` (T ≤ ``--dense-max``): :class:`~lightning_energy.LevenbergMarquardt` and the dense
  exact Hessian (n Hessian-vector products) with ``Cholesky``: O(T³) time, O(T²) memory.

``curvature_mb`` is the size of the curvature the solver carries per batch (the dense n × n
matrices or the packed blocks), the memory that decides how long a window fits; ``graph_mb`` is
what the autograd graph keeps for backward (:mod:`~lightning_energy.bench.timing`).

With ``--blocks`` it times one Gauss–Newton evaluation of the real sequence pose energy
instead, closed-form block derivatives against automatic ones
(:mod:`~lightning_energy.bench.sequence_blocks`).
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

import torch

from lightning_energy.adjoints import ImplicitAdjoint
from lightning_energy.bench.problems import SequencePoseLikeEnergy
from lightning_energy.bench.sequence_blocks import format_blocks, measure_blocks
from lightning_energy.bench.timing import time_once
from lightning_energy.layer import EnergyLayer
from lightning_energy.linalg import BlockArrow
from lightning_energy.solvers import (
    BlockArrowLevenbergMarquardt,
    LevenbergMarquardt,
    Problem,
)
from lightning_energy.solvers.trust_region import DenseTrustRegion


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``bench sequence``."""
    parser = argparse.ArgumentParser(prog="lightning-energy bench sequence")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="LM steps (exactly)")
    parser.add_argument("--dense-max", type=int, default=32,
                        help="longest window the dense path is run for")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--blocks", action="store_true",
                        help="time SequencePoseEnergy's block derivatives: closed form, automatic")
    parser.add_argument("--ppca-root", default=None,
                        help="with --blocks: the authors' PPCA folder (default: the tiny model)")
    parser.add_argument("--repeats", type=int, default=3, help="with --blocks: timed runs per row")
    return parser


def paths(frames: int,
          args: argparse.Namespace) -> dict[str, tuple[DenseTrustRegion, ImplicitAdjoint]]:
    """The (solver, adjoint) pairs compared at ``frames`` frames."""
    structured = (BlockArrowLevenbergMarquardt(args.steps, tol=0.0),
                  ImplicitAdjoint(1e-2, linear_solver=BlockArrow()))
    out: dict[str, tuple[DenseTrustRegion, ImplicitAdjoint]] = {"block_arrow": structured}
    if frames <= args.dense_max:
        out["dense"] = (LevenbergMarquardt(args.steps, tol=0.0), ImplicitAdjoint(1e-2))
    return out


def measure(frames: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per path at ``frames`` frames."""
    device = torch.device(args.device)
    energy = SequencePoseLikeEnergy().to(device=device, dtype=torch.float64)
    inputs = energy.sample_inputs(args.batch_size, frames).to(device)
    n = frames * energy.frame_size + energy.shared_size
    rows = []
    for name, (solver, adjoint) in paths(frames, args).items():
        layer = EnergyLayer(energy, solver, adjoint, nonconverged="warn")
        energy.zero_grad()
        solution, forward, backward, graph = time_once(layer, inputs, device)
        problem = Problem(energy, inputs, (n,), torch.float64)
        with torch.no_grad():
            curvature = solver.evaluate(problem, solution.x.detach())[2]
        rows.append({"frames": frames, "variables": n, "batch_size": args.batch_size,
                     "path": name, "device": str(device), "forward_ms": forward,
                     "backward_ms": backward, "total_ms": forward + backward,
                     "curvature_mb": curvature.numel() * curvature.element_size() / 2**20,
                     "graph_mb": graph})
    return rows


def format_table(records: list[dict[str, Any]]) -> str:
    """Plain-text table of the records."""
    head = (f"{'T':>6}{'n':>7}{'B':>4}{'path':>13}{'fwd ms':>10}{'bwd ms':>10}{'total ms':>10}"
            f"{'curv MB':>10}{'graph MB':>10}")
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(f"{r['frames']:>6}{r['variables']:>7}{r['batch_size']:>4}{r['path']:>13}"
                     f"{r['forward_ms']:>10.1f}{r['backward_ms']:>10.1f}{r['total_ms']:>10.1f}"
                     f"{r['curvature_mb']:>10.2f}{r['graph_mb']:>10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Entry point: parse, run; returns the table (or JSON) that the command prints."""
    args = build_parser().parse_args(argv)
    if args.blocks:
        records = [row for frames in args.frames for row in measure_blocks(frames, args)]
        return json.dumps(records, indent=2) if args.format == "json" else format_blocks(records)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tol=0: every solve "did not converge"
        # A short run first: the first forward-mode call traces torch's decompositions.
        measure(2, argparse.Namespace(**{**vars(args), "dense_max": 0}))
        records = [row for frames in args.frames for row in measure(frames, args)]
    return json.dumps(records, indent=2) if args.format == "json" else format_table(records)
