"""Part 6 of the study on the multi-view pose task: what the energy's parameters did in training.

``python -m studies.assumptions.pose_trajectories --out docs/study`` trains the recipe
``recipes/pose/h36m_multiview.yaml`` in one leave-one-subject-out fold for several seeds — the
recipe's own task, DataModule and Trainer through ``lightning-energy fit`` — with a CSV logger
beside nothing else, so the values plotted are exactly those every recipe run logs to wandb
(``EnergyParameterMonitor``: ``energy/…`` per step). It writes ``pose_trajectories.json``,
``.png`` and ``.md``.
"""

from __future__ import annotations

import math
from typing import Any

from studies.assumptions.recipe_runs import command_section, trajectory_study

RECIPE = "recipes/pose/h36m_multiview.yaml"
SERIES = {
    "kernel scale δ (× 10 px)": "energy/kernel.scale",
    "pose prior weight": "energy/prior",
    "scale prior weight": "energy/scale_prior",
    "joint weights: mean log w": "energy/log_weights/mean",
    "joint weights: std of log w": "energy/log_weights/std",
    "PPCA log σ: mean": "energy/log_std/mean",
}
"""Panel title → the logged column (the interpretable parameters; the shape model's thousands
of coordinates are summarised by their PPCA scales)."""
VALIDATION = "val/mpjpe"


def page(result: dict[str, Any], command: str) -> str:
    """The Markdown page: conclusions with their numbers, the figure, the command."""
    def span(title: str, key: str) -> str:
        values = [v[key] for v in result[title]]
        return f"{min(values):.3g}–{max(values):.3g}" if len(values) > 1 else f"{values[0]:.3g}"

    def change(title: str) -> str:
        return f"{span(title, 'first')} → {span(title, 'last')}"

    weights_first = [math.exp(v["first"]) for v in result["joint weights: mean log w"]]
    weights_last = [math.exp(v["last"]) for v in result["joint weights: mean log w"]]
    n = len(result["seeds"])
    seconds = f"{min(result['seconds']):.0f}–{max(result['seconds']):.0f}"
    return f"""# Study, multi-view pose: what the energy learned (part 6)

The recipe `{RECIPE}` trained in its {result['fold']} fold (trained on the other
subjects; the first of them validates) for {n} seeds, each in {seconds} s on one CPU thread.
The values are those
every recipe run logs (`EnergyParameterMonitor`; to wandb by
default, to CSV here), from the first logged step (the recipe logs every 10 steps) to the last;
ranges over seeds. The recipe starts δ at 2, the pose prior at 1, the scale prior at 10 and every
joint weight at 1.

- **Kernel scale δ** (pseudo-Huber, in units of 10 px): {change('kernel scale δ (× 10 px)')}.
- **Pose prior weight**: {change('pose prior weight')}; **scale prior weight**:
  {change('scale prior weight')}.
- **Joint weights**: geometric mean {min(weights_first):.3g}–{max(weights_first):.3g} →
  {min(weights_last):.3g}–{max(weights_last):.3g}; their spread (std of log w over joints and
  views) {change('joint weights: std of log w')}.
- **PPCA scales** (mean log σ of the pose bases): {change('PPCA log σ: mean')}.
- Validation MPJPE after training (mm, every 128th frame of the fold's first training
  subject, S1: a check of the fit, not a held-out result):
  {span('val/mpjpe', 'last')}.

![Interpretable parameters during training](pose_trajectories.png)

*One line per seed; x: training step (batches of 64 frames). Panels: the pseudo-Huber kernel
scale, the weights of the pose prior and of the scale prior, the mean and spread of the log
joint weights, the mean log scale of the PPCA bases.*

{command_section(command, "pose_trajectories")}"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, read the logs, write the figure, numbers and page."""
    return trajectory_study(argv, __doc__, "pose_trajectories", RECIPE, "S8", SERIES, VALIDATION,
                            "Multi-view pose energy: its interpretable parameters during "
                            "training (recipe h36m_multiview)", page,
                            "training step (batches of 64 frames)")


if __name__ == "__main__":
    main()
