"""Part 4 of the study on the multi-view pose task: training curves per backward rule.

``python -m studies.assumptions.pose_stability --out docs/study`` trains the recipe
``recipes/pose/h36m_multiview.yaml`` on its own split (train S1 S5 S6 S7, validate on the
held-out S8) with each backward rule — the implicit adjoint with the exact Hessian and
λ ∈ {0, 1e-2 (the recipe's), 1, auto}, and unrolled differentiation through the training
solver's iterations — for several seeds (:mod:`studies.assumptions.backward_rules`). It writes
``pose_stability.json``, ``.png`` and ``.md``.
"""

from __future__ import annotations

from typing import Any

from studies.assumptions import backward_rules
from studies.assumptions.backward_rules import UNROLLED, Metric, Task
from studies.assumptions.pose_trajectories import RECIPE

_ADJOINT = "--model.init_args.adjoint"
SETTINGS: dict[str, list[str]] = {
    "λ = 0": [f"{_ADJOINT}.init_args.damping", "0.0"],
    "λ = 1e-2 (recipe)": [],
    "λ = 1": [f"{_ADJOINT}.init_args.damping", "1.0"],
    "λ = auto": [f"{_ADJOINT}.init_args.damping", "auto"],
    "unrolled": [_ADJOINT, UNROLLED],
}
"""Backward rule → the recipe overrides that select it (exact Hessian unless unrolled)."""

VAL_STRIDE = 16
"""Every 16th stored frame of S8 validates at the end (~800 frames; the recipe's 128 is ~100)."""

TASK = Task(
    name="pose_stability", title="multi-view pose", recipes=(RECIPE,), fold=None,
    settings=SETTINGS, reference="λ = 1e-2 (recipe)",
    metrics=(Metric("mpjpe", "MPJPE", "mm"), Metric("pa_mpjpe", "PA-MPJPE", "mm")),
    overrides=("--trainer.log_every_n_steps", "1",
               "--data.init_args.val_frame_stride", str(VAL_STRIDE)),
    loss="the batch's root-aligned MPJPE (mm)", step="batches of 64 frames",
    intro=f"The recipe `{RECIPE}` trained on its own split (S1 S5 S6 S7; the held-out S8 "
          f"validates, every {VAL_STRIDE}th stored frame) with each backward rule.",
    protocol=f"""- **Task**: `{RECIPE}` unchanged but for the backward rule: 150 Adam steps of 64
  frames (energy rate 1e-2, shape model 2e-3), Levenberg–Marquardt ≤ 30 steps in float64,
  `nonconverged="mask"` (64 frames × 3 components = 192 solves per step). The implicit rules use
  the exact Hessian; "unrolled" backpropagates through the 30 LM iterations (`UnrolledAdjoint`).
- **Validation**: once, after the last step, on every {VAL_STRIDE}th stored frame of S8.""")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train every rule for every seed, read the logs, write the figure, numbers and page."""
    return backward_rules.main(argv, TASK, __doc__)


if __name__ == "__main__":
    main()
