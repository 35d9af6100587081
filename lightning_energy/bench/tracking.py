"""``lightning-energy bench tracking``: one long track fused and differentiated, by linear solver.

A simulated sequence of T frames and K trackers (:func:`~lightning_energy.datasets.
simulate_tracking`), the tracker-fusion energy (n = 4T variables), solved by
:class:`~lightning_energy.solvers.BandedIRLS` to ‖∇ₓE‖ ≤ ``--tol`` (float64) and differentiated
by the implicit adjoint (loss Σ‖x*‖², λ = 1e-2) with each linear solver: ``Banded`` (the
pentadiagonal blocks, O(T)), ``ConjugateGradient`` (matrix-free Hessian-vector products) and,
for T ≤ ``--dense-max``, dense ``Cholesky`` of the exact Hessian (n Hessian-vector products,
O(T³)). Times are one run each (the solve's step count depends on the sequence); memory as in
:mod:`~lightning_energy.bench.timing`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from lightning_energy.adjoints import ImplicitAdjoint
from lightning_energy.bench.timing import time_once
from lightning_energy.datasets import TrackingSample, collate_tracking, simulate_tracking
from lightning_energy.energies.tracking import TrackFusionEnergy, TrackFusionInputs, fusion_inputs
from lightning_energy.layer import EnergyLayer
from lightning_energy.linalg import Banded, Cholesky, ConjugateGradient, LinearSolver
from lightning_energy.solvers import BandedIRLS


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``bench tracking``."""
    parser = argparse.ArgumentParser(prog="lightning-energy bench tracking")
    parser.add_argument("--frames", type=int, nargs="+", default=[256, 1000, 5000])
    parser.add_argument("--trackers", type=int, default=8)
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--dense-max", type=int, default=256,
                        help="longest sequence the dense exact Hessian is built for")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    return parser


def sequence_inputs(frames: int, trackers: int, device: torch.device) -> TrackFusionInputs:
    """The fusion inputs of one simulated sequence (B = 1), float64, on ``device``."""
    data = simulate_tracking(1, frames, trackers, seed=0)
    item = data[data.names[0]]
    batch = collate_tracking([TrackingSample.from_arrays(item.boxes, item.gt, item.sequence)])
    inputs, _ = fusion_inputs(batch.boxes.double().to(device), batch.valid.to(device),
                              batch.frame_valid.to(device))
    return inputs


def linear_solvers(frames: int, dense_max: int) -> dict[str, LinearSolver]:
    """The adjoint's linear solvers compared at ``frames`` frames."""
    solvers: dict[str, LinearSolver] = {"banded": Banded(), "cg": ConjugateGradient()}
    if frames <= dense_max:
        solvers["dense"] = Cholesky()
    return solvers


def measure(frames: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per linear solver at ``frames`` frames."""
    device = torch.device(args.device)
    inputs = sequence_inputs(frames, args.trackers, device)
    energy = TrackFusionEnergy(args.trackers).double().to(device)
    rows = []
    for name, linear_solver in linear_solvers(frames, args.dense_max).items():
        layer = EnergyLayer(energy, BandedIRLS(max_steps=300, tol=args.tol),
                            ImplicitAdjoint(1e-2, linear_solver=linear_solver))
        energy.zero_grad()
        solution, forward, backward, memory = time_once(layer, inputs, device)
        rows.append({"frames": frames, "variables": 4 * frames, "trackers": args.trackers,
                     "linear_solver": name, "device": str(device),
                     "forward_ms": forward, "backward_ms": backward,
                     "total_ms": forward + backward, "solver_steps": int(solution.num_steps[0]),
                     "converged": bool(solution.converged[0]), "graph_memory_mb": memory})
    return rows


def format_table(records: list[dict[str, Any]]) -> str:
    """Plain-text table of the records."""
    head = (f"{'T':>6}{'n':>7}{'linear solver':>15}{'steps':>7}{'conv':>6}{'fwd ms':>10}"
            f"{'bwd ms':>10}{'total ms':>10}{'memory MB':>11}")
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(f"{r['frames']:>6}{r['variables']:>7}{r['linear_solver']:>15}"
                     f"{r['solver_steps']:>7}{'yes' if r['converged'] else 'no':>6}"
                     f"{r['forward_ms']:>10.1f}{r['backward_ms']:>10.1f}{r['total_ms']:>10.1f}"
                     f"{r['graph_memory_mb']:>11.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Entry point: parse, run; returns the table (or JSON) that the command prints."""
    args = build_parser().parse_args(argv)
    # A warm-up run first, long enough for the LAPACK banded path: the first forward-mode call
    # traces torch's decompositions and the first long solves allocate (seconds, measured 3.8 s
    # against 0.85 s steady at T = 5,000).
    warmup = max(min(args.frames), 300)
    measure(warmup, argparse.Namespace(**{**vars(args), "dense_max": 0}))
    records = [row for frames in args.frames for row in measure(frames, args)]
    return json.dumps(records, indent=2) if args.format == "json" else format_table(records)
