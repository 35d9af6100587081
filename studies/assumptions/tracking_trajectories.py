"""Part 6 of the study on tracker fusion: what the energy's parameters did in training.

``python -m studies.assumptions.tracking_trajectories --out docs/study`` trains the OTB-100
recipe ``recipes/tracking/otb100.yaml`` under its cross-validation protocol
(``recipes/tracking/cv/protocol.yaml``: fold 0 of 5 whole-video folds, 300 steps, validation
every 25 steps) for several seeds through ``lightning-energy fit``, with a CSV logger, and
plots what ``EnergyParameterMonitor`` logs: the smoothness weights α (first order) and β
(second order) of the box centre and size, the Cauchy kernel's scale δ and the spread of the
per-tracker weights. It writes ``tracking_trajectories.json``, ``.png`` and ``.md``.
"""

from __future__ import annotations

from typing import Any

from studies.assumptions.recipe_runs import command_section, trajectory_study

RECIPES = ["recipes/tracking/otb100.yaml", "recipes/tracking/cv/protocol.yaml"]
SERIES = {
    "α, centre (first-order smoothness)": "energy/alpha/0",
    "α, size": "energy/alpha/1",
    "β, centre (second-order smoothness)": "energy/beta/0",
    "β, size": "energy/beta/1",
    "Cauchy kernel scale δ": "energy/robust.scale",
    "tracker weights: std of log w": "energy/log_tracker_weight/std",
}
"""Panel title → the logged column."""
VALIDATION = "val/success_auc"


def page(result: dict[str, Any], command: str) -> str:
    """The Markdown page: first → last value of each parameter, the figure, the command."""
    def span(title: str, key: str) -> str:
        values = [v[key] for v in result[title]]
        return f"{min(values):.3g}–{max(values):.3g}" if len(values) > 1 else f"{values[0]:.3g}"

    bullets = "\n".join(f"- **{title}**: {span(title, 'first')} → {span(title, 'last')}."
                        for title in SERIES)
    curves = [s[VALIDATION] for s in result["series"].values()]
    best = [max(c["value"]) for c in curves]
    at = [c["step"][c["value"].index(max(c["value"]))] for c in curves]
    drop = [max(c["value"]) - c["value"][-1] for c in curves]
    n = len(result["seeds"])
    seconds = f"{min(result['seconds']):.0f}–{max(result['seconds']):.0f}"
    return f"""# Study, tracker fusion: what the energy learned (part 6)

Part 6 of the [assumption study](index.md) on tracker fusion: the OTB-100 recipe
(`{RECIPES[0]}` with its cross-validation protocol `{RECIPES[1]}`, fold {result['fold']}:
trained on the other folds' videos but the 20% held out to validate) for {n} seeds (a seed
draws the feature network's initial weights, the windows and the 5-fold split itself), each in
{seconds} s on one CPU thread. The values are those every recipe run logs
(`EnergyParameterMonitor`; to wandb by default, to CSV here), from the first logged step to the
last; ranges over seeds. The recipe starts α at (1, 10), β at (1, 1) and δ at 0.15; the
tracker weights start from the trackers' training AUC (`TrackerWeightsFromAUC`).

{bullets}
- Validation success AUC (the held-out 20% of the training videos, every 25 steps), first →
  last logged: {span(VALIDATION, 'first')} → {span(VALIDATION, 'last')}; best
  {min(best):.3g}–{max(best):.3g}, at step {min(at):d}–{max(at):d} (the state
  `BestOnValidation` keeps), the last below the best by {min(drop):.3g}–{max(drop):.3g}.

![Tracker-fusion energy parameters during training](tracking_trajectories.png)

*One line per seed; x: training step (windows of 32 frames, 16 per step). Panels: the
first-order (α) and second-order (β) smoothness weights of the box centre and size, the
Cauchy kernel's scale, the spread of the log tracker weights.*

{command_section(command, "tracking_trajectories")}"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, read the logs, write the figure, numbers and page."""
    return trajectory_study(argv, __doc__, "tracking_trajectories", RECIPES, "0", SERIES,
                            VALIDATION, "Tracker-fusion energy (OTB-100): its parameters during "
                            "training", page, "training step (16 windows of 32 frames)",
                            overrides=["--trainer.log_every_n_steps", "5"])


if __name__ == "__main__":
    main()
