"""Window solvers of the sequence pose recipe on one real batch: steps, time, minima.

    python studies/sequence_solvers.py     # one thread; needs ../shared/data

Solves the same 4 windows × 16 frames of S8 (untrained `SequencePoseTask`, the recipe's
energy) with `BlockArrowLevenbergMarquardt` (plain Gauss–Newton and with the kernels'
curvature) and `BlockArrowNewton`, to ‖∇E‖ ≤ 1e-4, and prints each one's time, steps,
convergence and final energies (the second call, after a warm-up).
"""

from __future__ import annotations

import time

import torch

import lightning_energy as le
from lightning_energy.datamodules import PoseSequenceDataModule
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.tasks import SequencePoseTask

ROOT, PPCA = "../shared/data/h36m_multiview_sh", "../shared/data/wibergian_ppca"


def main() -> None:
    """Solve the batch with each solver and print one line per solver."""
    torch.set_num_threads(1)
    data = PoseSequenceDataModule(ROOT, train_subjects=["S8"], window=16, batch_size=4)
    data.setup("fit")
    batches = iter(data.train_dataloader())
    next(batches)
    batch = next(batches)
    common = {"max_steps": 150, "tol": 1e-4, "dtype": "float64"}
    solvers = {"gauss_newton": le.BlockArrowLevenbergMarquardt(**common),
               "kernel_curvature": le.BlockArrowLevenbergMarquardt(**common,
                                                                   kernel_curvature=True),
               "newton": le.BlockArrowNewton(**common)}
    for name, solver in solvers.items():
        task = SequencePoseTask(MultiViewPoseEnergy(PPCA, num_components=3), solver=solver)
        with torch.no_grad():
            task(batch)
            start = time.perf_counter()
            solution = task(batch)
            seconds = time.perf_counter() - start
        first = solution.num_steps[::16]
        print(f"{name:17s} {seconds:6.1f} s  steps {first.tolist()}  converged "
              f"{solution.converged[::16].tolist()}  energies "
              f"{[round(v, 4) for v in solution.value[::16].tolist()]}")


if __name__ == "__main__":
    main()
