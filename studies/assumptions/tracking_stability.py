"""Part 4 of the study on tracker fusion: training curves per backward rule.

``python -m studies.assumptions.tracking_stability --out docs/study`` trains the OTB-100 recipe
under its cross-validation protocol (``recipes/tracking/otb100.yaml`` with
``recipes/tracking/cv/protocol.yaml``, fold 0) with each backward rule — the implicit adjoint
with the banded linear solver and λ ∈ {0, 1e-2 (the recipe's), 1}, and unrolled
differentiation through the banded IRLS iterations — for several seeds
(:mod:`studies.assumptions.backward_rules`). ``"auto"`` damping needs eigenvalues, which the
banded solver does not compute. It writes ``tracking_stability.json``, ``.png`` and ``.md``.
"""

from __future__ import annotations

from typing import Any

from studies.assumptions import backward_rules
from studies.assumptions.backward_rules import UNROLLED, Metric, Task
from studies.assumptions.tracking_trajectories import RECIPES

_ADJOINT = "--model.init_args.layer.init_args.adjoint"
SETTINGS: dict[str, list[str]] = {
    "λ = 0": [f"{_ADJOINT}.init_args.damping", "0.0"],
    "λ = 1e-2 (recipe)": [],
    "λ = 1": [f"{_ADJOINT}.init_args.damping", "1.0"],
    "unrolled": [_ADJOINT, UNROLLED],
}
"""Backward rule → the recipe overrides that select it."""

TASK = Task(
    name="tracking_stability", title="tracker fusion", recipes=tuple(RECIPES), fold="0",
    settings=SETTINGS, reference="λ = 1e-2 (recipe)",
    metrics=(Metric("success_auc", "success AUC", "", higher_is_better=True),
             Metric("precision_20px", "precision at 20 px", "", higher_is_better=True)),
    overrides=("--trainer.log_every_n_steps", "1"),
    loss="the batch's GIoU loss (1 − GIoU of the fused boxes)",
    step="16 windows of 32 frames",
    intro=f"The OTB-100 recipe `{RECIPES[0]}` under its cross-validation protocol "
          f"`{RECIPES[1]}`, fold 0 (trained on the other folds' videos but a 20% carve-out of "
          "whole videos, which validates), with each backward rule. A seed also draws the "
          "5-fold split, so the validation videos differ between seeds: the per-seed "
          "differences are the comparison, the spread over seeds is mostly the split's.",
    protocol=f"""- **Task**: `{RECIPES[0]}` with `{RECIPES[1]}`, unchanged but for the backward
  rule: 300 Adam steps of 16 windows of 32 frames (energy rate 0.02, feature network 3e-3),
  banded IRLS ≤ 300 steps to ‖∇ₓE‖ ≤ 1e-5 in float64, `nonconverged="mask"`. The implicit rules
  solve with the banded Hessian (`Banded`); "unrolled" backpropagates through the IRLS
  iterations (`UnrolledAdjoint`). `"auto"` damping is not offered with `Banded`.
- **Validation**: every 25 steps on the carve-out's whole videos; the table's is the last
  (`BestOnValidation` would keep the best for testing).""")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train every rule for every seed, read the logs, write the figure, numbers and page."""
    return backward_rules.main(argv, TASK, __doc__)


if __name__ == "__main__":
    main()
