"""Part 5 of the study on the multi-view pose task: learning against grid search, equal accuracy.

``python -m studies.assumptions.pose_grid --out docs/study`` compares two ways of setting the
weights a grid can search — the pose prior's weight and the pseudo-Huber kernel scale δ — in
the leave-one-subject-out fold S8 of ``recipes/pose/h36m_multiview.yaml`` (train S1 S5 S6 S7,
test S8), both through ``lightning-energy cv``:

* **learned**: the recipe trained with its ``learn`` list cut to ``[prior, kernel]`` (every
  other parameter as initialised), several seeds;
* **grid**: G × G log-spaced values of the same two, the energy otherwise the same untrained
  one, each point scored by MPJPE on frames of S1 (the fold's validation subject, a training
  subject) and the best tested, for several G.

It writes ``pose_grid.json``, ``.png`` and ``.md``: test MPJPE against grid points and seconds.
"""

from __future__ import annotations

from typing import Any

from studies.assumptions import grid_study
from studies.assumptions.backward_rules import Metric
from studies.assumptions.grid_study import Axis, GridTask
from studies.assumptions.pose_trajectories import RECIPE

FOLD = "S8"
SCORE_STRIDE = 8
"""Every 8th stored frame of S1 scores a grid point (~390 frames; the recipe's 128 gives ~25)."""
_ENERGY = "model.init_args.energy.init_args"

TASK = GridTask(
    name="pose_grid", title="multi-view pose", recipes=(RECIPE,), fold=FOLD,
    axes=(Axis(f"{_ENERGY}.prior_weight", "λ_prior", (0.1, 10.0), 1.0, "energy.log_prior"),
          Axis(f"{_ENERGY}.kernel_scale", "δ", (0.5, 8.0), 2.0, "kernel.log_scale")),
    metric=Metric("mpjpe", "MPJPE", "mm"), second=Metric("pa_mpjpe", "PA-MPJPE", "mm"),
    select={"monitor": "val/mpjpe", "mode": "min", "split": "val"},
    overrides=("--data.init_args.val_frame_stride", str(SCORE_STRIDE)),
    learn=(f"--{_ENERGY}.learn", "[prior, kernel]"), grid_per_seed=False,
    intro=f"""Part 5 of the [assumption study](index.md) on the real task: the two energy weights a
grid can search — the pose prior's weight λ_prior and the pseudo-Huber kernel scale δ (× 10 px)
— set by learning them or by grid search, every other parameter of the energy the same untrained
one, in the leave-one-subject-out fold {FOLD} of `{RECIPE}` (train S1 S5 S6 S7, test {FOLD}
every 4th stored frame). The [tracking page](tracking_grid.md) asks the same of tracker fusion.""",
    beyond="""Where learning pays is where a grid cannot go: the recipe learning every parameter
group (joint weights, the PPCA shape model, camera corrections, the priors; thousands of values)
reaches 37.6 mm on this fold ([pose results](../results/pose.md), seed 0).""",
    protocol=f"""- **Learned**: the recipe (150 Adam steps of 64 frames, rate 1e-2, LM ≤ 30 steps,
  implicit adjoint λ = 1e-2) with `learn: [prior, kernel]`; seconds: `trainer.fit`. The fold
  is fixed, so the seeds differ only in the training order.
- **Grid**: λ_prior in [0.1, 10] × δ in [0.5, 8], log-spaced, G values each; every point
  scored by the untrained energy's MPJPE on every {SCORE_STRIDE}th stored frame of S1 (a
  training subject), the lowest tested; seconds: the whole search (`cv` records
  `grid_seconds`).""")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every job, read the records, write the figure, numbers and page."""
    return grid_study.main(argv, TASK, __doc__)


if __name__ == "__main__":
    main()
