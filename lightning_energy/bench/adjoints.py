"""``lightning-energy bench adjoints``: forward/backward time and memory of each adjoint.

The problem is :class:`~lightning_energy.bench.problems.PoseLikeEnergy` (n = 30 variables,
m = 161 residuals, pseudo-Huber kernel, ≈1,500 energy parameters), solved for exactly
``--steps`` steps (see :func:`adjoint_rows` for the solver of each row). Rows:
``ImplicitAdjoint(1e-2)`` with each Hessian mode, ``UnrolledAdjoint``, and a per-sample
reference that loops over samples in Python and builds each
Hessian row by row with autograd (how the method was first implemented), on a slice of the batch.

``peak_memory_mb``: on CUDA, ``torch.cuda.max_memory_allocated`` during forward+backward above
what was allocated before; on CPU (no allocator statistics), the distinct storage bytes that the
autograd graph holds for the backward pass after the forward — the part that depends on the
adjoint (inputs and parameters excluded).

``--profile`` adds each row's operator, kernel and host-synchronisation counts of one step
(:mod:`~lightning_energy.bench.profile`).
"""

from __future__ import annotations

import argparse
import json
import warnings
from functools import partial
from typing import Any

import torch

from lightning_energy.adjoints.base import Adjoint
from lightning_energy.adjoints.implicit import ImplicitAdjoint
from lightning_energy.adjoints.unrolled import UnrolledAdjoint
from lightning_energy.bench.problems import PoseLikeEnergy
from lightning_energy.bench.profile import format_profile, profile_step
from lightning_energy.bench.reference import per_sample_reference
from lightning_energy.bench.timing import time_layer
from lightning_energy.layer import EnergyLayer
from lightning_energy.solvers.base import Solver
from lightning_energy.solvers.gauss_newton import LevenbergMarquardt
from lightning_energy.solvers.newton import Newton

FIELDS = ("adjoint", "hessian", "solver", "batch_size", "steps", "dtype", "device",
          "forward_ms", "backward_ms", "peak_memory_mb")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``bench adjoints``."""
    parser = parser or argparse.ArgumentParser(prog="lightning-energy bench adjoints")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10, help="solver steps (exactly)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--reference-batch", type=int, default=4,
                        help="samples the per-sample reference runs on (0 skips it)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="solve the batch in chunks of this many samples")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one step per row: operator, kernel and sync counts")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    return parser


def adjoint_rows(steps: int) -> list[tuple[str, str, Adjoint, Solver]]:
    """The (adjoint, hessian, adjoint object, forward solver) rows compared.

    Every solver runs exactly ``steps`` steps (tol = 0). Where the solver's own curvature is the
    adjoint's Hessian (LM ↔ Gauss–Newton, Newton ↔ exact) the backward pass reuses it; the
    ``exact`` row with the LM solver shows the cost when the Hessian must be recomputed.
    """
    lm, newton = LevenbergMarquardt(steps, tol=0.0), Newton(steps, tol=0.0)
    return [
        ("ImplicitAdjoint", "gauss_newton", ImplicitAdjoint(1e-2, hessian="gauss_newton"), lm),
        ("ImplicitAdjoint", "exact", ImplicitAdjoint(1e-2, hessian="exact"), newton),
        ("ImplicitAdjoint", "exact", ImplicitAdjoint(1e-2, hessian="exact"), lm),
        ("ImplicitAdjoint", "cg", ImplicitAdjoint(1e-2, hessian="cg"), lm),
        ("UnrolledAdjoint", "-", UnrolledAdjoint(), lm),
    ]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every row; returns the records."""
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    energy = PoseLikeEnergy().to(device=device, dtype=dtype)
    inputs = energy.sample_inputs(args.batch_size).to(device)
    common = {"steps": args.steps, "dtype": args.dtype, "device": str(device)}
    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tol=0: every solve "did not converge"
        for name, hessian, adjoint, solver in adjoint_rows(args.steps):
            layer = EnergyLayer(energy, solver, adjoint, nonconverged="warn",
                                chunk_size=args.chunk_size)
            fwd, bwd, mem = time_layer(layer, inputs, device, args.repeats)
            records.append({"adjoint": name, "hessian": hessian, "solver": type(solver).__name__,
                            "batch_size": args.batch_size, **common, "forward_ms": fwd,
                            "backward_ms": bwd, "peak_memory_mb": mem})
            if args.profile:
                records[-1]["profile"] = profile_step(partial(_loss, layer, inputs), device)
    if args.reference_batch > 0:
        ref = per_sample_reference(energy, inputs[: args.reference_batch], args.steps,
                                   damping=1e-2, repeats=max(1, min(args.repeats, 3)))
        records.append({"adjoint": "per-sample reference", "hessian": "exact (row by row)",
                        "solver": "damped Newton", "batch_size": args.reference_batch,
                        **common, **ref})
    return records


def _loss(layer: EnergyLayer, inputs: torch.Tensor) -> torch.Tensor:
    return layer(inputs).x.pow(2).sum()


def format_table(records: list[dict[str, Any]]) -> str:
    """A plain-text table with per-sample times and backward/forward ratios."""
    head = (f"{'adjoint':<22}{'hessian':<20}{'solver':<20}{'B':>6}{'steps':>6}"
            f"{'fwd ms':>11}{'bwd ms':>11}"
            f"{'bwd/fwd':>9}{'fwd+bwd ms/sample':>19}{'memory MB':>11}")
    lines = [head, "-" * len(head)]
    for r in records:
        per_sample = (r["forward_ms"] + r["backward_ms"]) / r["batch_size"]
        lines.append(
            f"{r['adjoint']:<22}{r['hessian']:<20}{r['solver']:<20}{r['batch_size']:>6}{r['steps']:>6}"
            f"{r['forward_ms']:>11.1f}{r['backward_ms']:>11.1f}"
            f"{r['backward_ms'] / r['forward_ms']:>9.3f}{per_sample:>19.3f}"
            f"{r['peak_memory_mb']:>11.2f}"
        )
    lines += [format_profile(f"{r['adjoint']}, {r['hessian']}, {r['solver']}", r["profile"])
              for r in records if "profile" in r]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Entry point: parse, run; returns the table (or JSON) that the command prints."""
    args = build_parser().parse_args(argv)
    records = run(args)
    return json.dumps(records, indent=2) if args.format == "json" else format_table(records)
