"""``lightning-energy bench sequence --blocks``: closed-form versus automatic block derivatives.

One Gauss–Newton evaluation of :class:`~lightning_energy.energies.SequencePoseEnergy` (value,
gradient and the block-arrow matrix with the kernels' curvature, as the recipe's window solver
asks for every step) on B synthetic windows of T frames, two ways:

* ``closed_form``: the energy's :meth:`~SequencePoseEnergy.jacobian_blocks` and
  :meth:`~SequencePoseEnergy.curvature_products` (chain rule, per-joint offset columns, each
  kernel's group curvature in closed form);
* ``coloured``: the base class's 2p + s coloured Jacobian-vector products and forward-mode
  products with the curvature (what any :class:`~lightning_energy.SequenceLeastSquaresEnergy`
  gets without overrides).

``max_rel_diff`` compares the two block-arrow matrices (dense), so the rows show the same numbers
computed at different cost. With ``--ppca-root`` the energy uses the authors' PPCA model (p = 30,
the recipe's size); without it the tiny synthetic model (p = 11).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import Tensor

from lightning_energy._tree import tree_map
from lightning_energy.bench.timing import median_ms
from lightning_energy.datasets.pose_synthetic import generate_synthetic_sequences
from lightning_energy.datasets.pose_windows import (
    PoseWindows,
    collate_windows,
    covering_windows,
    sequence_runs,
)
from lightning_energy.energies.pose import MultiViewPoseEnergy, pose_energy_inputs
from lightning_energy.energies.pose_sequence import SequencePoseEnergy, SequencePoseInputs
from lightning_energy.energies.ppca import load_ppca

F64 = torch.float64


def window_problem(frames: int, batch_size: int, ppca_root: str | None,
                   device: torch.device) -> tuple[SequencePoseEnergy, SequencePoseInputs, Tensor]:
    """The energy, B windows of ``frames`` frames and a start near the DLT initialisation."""
    m = 3 if ppca_root else 1  # the file holds 3, 6 or 10 components: every frame takes the first
    model = load_ppca(ppca_root, m) if ppca_root else None
    arrays = generate_synthetic_sequences(batch_size, frames, model, seed=0)
    windows = PoseWindows(arrays, covering_windows(sequence_runs(arrays), frames, 0))
    batch = collate_windows([windows[i] for i in range(batch_size)])
    problems = pose_energy_inputs(batch.frames.to(dtype=F64), m)
    inputs = SequencePoseInputs(
        tree_map(lambda x: x[::m].reshape(batch_size, frames, *x.shape[1:]).to(device), problems),
        batch.real.to(device=device, dtype=F64))
    energy = SequencePoseEnergy(MultiViewPoseEnergy(ppca_root, num_components=m))
    energy = energy.to(device=device, dtype=F64)
    x = energy.initial_solution(inputs)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    return energy, inputs, x + 0.01 * noise.to(device)


def measure_blocks(frames: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per way of computing the blocks at ``frames`` frames."""
    device = torch.device(args.device)
    energy, inputs, x = window_problem(frames, args.batch_size, args.ppca_root, device)
    coloured = SequencePoseEnergy(energy.frame, energy.body).to(device=device, dtype=F64)
    coloured.load_state_dict(energy.state_dict())
    coloured.closed_form_jacobian = False
    rows, matrices = [], {}
    for name, e in (("closed_form", energy), ("coloured", coloured)):
        def evaluate(e: SequencePoseEnergy = e) -> Any:
            with torch.no_grad():
                return e.gauss_newton_block_arrow(x, inputs, kernel_curvature=True)
        matrices[name] = evaluate()[2].dense()
        ms = median_ms(evaluate, device, args.repeats)
        rows.append({"frames": frames, "variables": x.shape[1], "batch_size": args.batch_size,
                     "path": name, "evaluation_ms": ms})
    scale = matrices["coloured"].abs().max()
    for row in rows:
        row["max_rel_diff"] = float((matrices["closed_form"] - matrices["coloured"]).abs().max()
                                    / scale)
        row["speedup"] = rows[1]["evaluation_ms"] / row["evaluation_ms"]
    return rows


def format_blocks(records: list[dict[str, Any]]) -> str:
    """Plain-text table of the records."""
    head = (f"{'T':>6}{'n':>7}{'B':>4}{'path':>13}{'eval ms':>10}{'speedup':>9}"
            f"{'max rel diff':>14}")
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(f"{r['frames']:>6}{r['variables']:>7}{r['batch_size']:>4}{r['path']:>13}"
                     f"{r['evaluation_ms']:>10.1f}{r['speedup']:>9.2f}{r['max_rel_diff']:>14.1e}")
    return "\n".join(lines)
