"""``lightning-energy bench parameters``: the backward's cost as the energy's parameters grow.

At a fixed number of variables (n = 30, m = 161) the energy is
:class:`~lightning_energy.bench.problems.WeightNetPoseEnergy`: the pose-shaped least-squares fit
whose residual weights come from a network of hidden width h, so the number of energy
parameters P grows with h while the solve stays the same. Forward: Levenberg–Marquardt for
exactly ``--steps`` steps (float64); backward: the implicit adjoint (exact Hessian, λ = 1e-2) of
L = Σ‖x*‖², which reaches every parameter. The backward's parameter part is one vector–Jacobian
product through ∇ₓE, an energy evaluation's worth of work, whatever P: its time should follow
the cost of evaluating the energy, not grow with P·n. Memory as in
:mod:`~lightning_energy.bench.timing`.
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

import torch

from lightning_energy.adjoints import ImplicitAdjoint
from lightning_energy.bench.problems import WeightNetPoseEnergy
from lightning_energy.bench.timing import time_layer
from lightning_energy.layer import EnergyLayer
from lightning_energy.solvers import LevenbergMarquardt


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``bench parameters``."""
    parser = argparse.ArgumentParser(prog="lightning-energy bench parameters")
    parser.add_argument("--hidden", type=int, nargs="+", default=[1, 100, 10_000, 100_000],
                        help="hidden widths of the weight network (P ≈ 18·h + 3,300)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="LM steps (exactly)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    return parser


def measure(hidden: int, args: argparse.Namespace) -> dict[str, Any]:
    """One record for the weight network of width ``hidden``."""
    if hidden < 1:
        raise ValueError(f"Expected `--hidden` widths >= 1, got {hidden}.")
    device = torch.device(args.device)
    energy = WeightNetPoseEnergy(hidden).to(device=device, dtype=torch.float64)
    inputs = energy.sample_inputs(args.batch_size).to(device)
    layer = EnergyLayer(energy, LevenbergMarquardt(args.steps, tol=0.0),
                        ImplicitAdjoint(1e-2, hessian="exact"), nonconverged="warn")
    forward, backward, memory = time_layer(layer, inputs, device, args.repeats)
    return {"hidden": hidden, "parameters": sum(p.numel() for p in energy.parameters()),
            "variables": energy.num_bases + 5, "batch_size": args.batch_size,
            "device": str(device), "forward_ms": forward, "backward_ms": backward,
            "memory_mb": memory}


def format_table(records: list[dict[str, Any]]) -> str:
    """Plain-text table of the records."""
    head = (f"{'hidden':>8}{'params':>10}{'n':>5}{'B':>5}{'fwd ms':>11}{'bwd ms':>11}"
            f"{'bwd/fwd':>9}{'memory MB':>11}")
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(f"{r['hidden']:>8}{r['parameters']:>10}{r['variables']:>5}"
                     f"{r['batch_size']:>5}{r['forward_ms']:>11.1f}{r['backward_ms']:>11.1f}"
                     f"{r['backward_ms'] / r['forward_ms']:>9.2f}{r['memory_mb']:>11.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Entry point: parse, run; returns the table (or JSON) that the command prints."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tol=0: every solve "did not converge"
        records = [measure(h, args) for h in args.hidden]
    return json.dumps(records, indent=2) if args.format == "json" else format_table(records)
