"""``lightning-energy bench scaling``: the implicit backward's cost as n, or the parameters, grow.

Variables (``--variables``): the problem is :class:`~lightning_energy.bench.problems.PoseLikeEnergy`
with ``num_bases`` = n − 5 (n variables, m = 136 + n − 5 residuals), B problems, solved by
Levenberg–Marquardt for exactly ``--steps`` steps (float64). The backward pass of L = Σ‖x*‖² is
timed for each way of solving (H + λI) v = dL/dx*: dense Cholesky of the exact Hessian (built
from n Hessian-vector products), dense Cholesky of the Gauss–Newton matrix (reused from the
solver), and matrix-free conjugate gradients on exact Hessian-vector products. Where one mode's
time crosses another's is where it should hand over.

Energy parameters (``--hidden``): at n = 30 the same fit with its residual weights from a
network of hidden width h (:class:`~lightning_energy.bench.problems.WeightNetPoseEnergy`), so the
number of energy parameters P grows while the solve stays the same; exact Hessian. The backward's
parameter part is one vector–Jacobian product through ∇ₓE, about an energy evaluation whatever
P, so its time should follow the energy's cost, not P · n.

Memory as in :mod:`~lightning_energy.bench.timing`.
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

import torch

from lightning_energy.adjoints import ImplicitAdjoint
from lightning_energy.bench.problems import PoseLikeEnergy, WeightNetPoseEnergy
from lightning_energy.bench.timing import time_layer
from lightning_energy.layer import EnergyLayer
from lightning_energy.linalg import ConjugateGradient
from lightning_energy.solvers import LevenbergMarquardt

MODES = {
    "exact": lambda: ImplicitAdjoint(1e-2, hessian="exact"),
    "gauss_newton": lambda: ImplicitAdjoint(1e-2, hessian="gauss_newton"),
    "cg": lambda: ImplicitAdjoint(1e-2, linear_solver=ConjugateGradient(rtol=1e-8)),
}
"""The backward modes compared: name → adjoint factory."""


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``bench scaling``."""
    parser = argparse.ArgumentParser(prog="lightning-energy bench scaling")
    parser.add_argument("--variables", type=int, nargs="*", default=[10, 30, 100, 300, 1000],
                        help="numbers of variables n (none: skip this sweep)")
    parser.add_argument("--hidden", type=int, nargs="*", default=[],
                        help="widths h of the weight network at n = 30 (P ≈ 18·h + 1,400)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="LM steps (exactly)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    return parser


def measure(n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per backward mode at n variables."""
    if n < 6:
        raise ValueError(f"Expected at least 6 variables, got {n}.")
    energy = PoseLikeEnergy(num_bases=n - 5)
    return [_record(energy, name, args) for name in MODES]


def measure_parameters(hidden: int, args: argparse.Namespace) -> dict[str, Any]:
    """One record (exact Hessian) for the weight network of width ``hidden`` at n = 30."""
    if hidden < 1:
        raise ValueError(f"Expected `--hidden` widths >= 1, got {hidden}.")
    return {**_record(WeightNetPoseEnergy(hidden), "exact", args), "hidden": hidden}


def _record(energy: PoseLikeEnergy, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    energy = energy.to(device=device, dtype=torch.float64)
    inputs = energy.sample_inputs(args.batch_size).to(device)
    layer = EnergyLayer(energy, LevenbergMarquardt(args.steps, tol=0.0), MODES[mode](),
                        nonconverged="warn")
    forward, backward, memory = time_layer(layer, inputs, device, args.repeats)
    n = energy.num_bases + 5
    return {"variables": n, "residuals": 136 + n - 5,
            "parameters": sum(p.numel() for p in energy.parameters()),
            "batch_size": args.batch_size, "mode": mode, "device": str(device),
            "forward_ms": forward, "backward_ms": backward, "memory_mb": memory}


def format_table(records: list[dict[str, Any]]) -> str:
    """Plain-text table of the records."""
    head = (f"{'n':>6}{'m':>6}{'P':>10}{'B':>5}{'mode':>14}{'fwd ms':>11}{'bwd ms':>11}"
            f"{'bwd/fwd':>9}{'memory MB':>11}")
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(f"{r['variables']:>6}{r['residuals']:>6}{r['parameters']:>10}"
                     f"{r['batch_size']:>5}{r['mode']:>14}{r['forward_ms']:>11.1f}"
                     f"{r['backward_ms']:>11.1f}{r['backward_ms'] / r['forward_ms']:>9.2f}"
                     f"{r['memory_mb']:>11.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Entry point: parse, run; returns the table (or JSON) that the command prints."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tol=0: every solve "did not converge"
        records = [row for n in args.variables for row in measure(n, args)]
        records += [measure_parameters(h, args) for h in args.hidden]
    return json.dumps(records, indent=2) if args.format == "json" else format_table(records)
