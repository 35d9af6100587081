"""What the pages of parts 1–3 on a recipe share: the figure, the answer per state, the tables.

The drivers' pages (``pose_page``, ``tracking_page``) add their own conclusions and protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt

STATES = {"init": "initial energy", "trained": "trained (fold model)"}
HESSIANS = {"exact": "exact H", "gauss_newton": "Gauss–Newton"}


@dataclass(frozen=True)
class Wording:
    """The nouns a page uses.

    ``sample``/``samples`` ("frame"/"frames"), ``theta`` ("detection confidences"), ``solver``
    (the recipe's solve, "30 LM steps") and ``move`` (what a step of θ does, "moving every
    confidence of a frame").
    """

    sample: str
    samples: str
    theta: str
    solver: str
    move: str


def fmt(value: float | None) -> str:
    """Three decimals between 0.01 and 1000, two significant digits outside."""
    if value is None:
        return "–"
    return f"{value:.2g}" if abs(value) < 0.01 or abs(value) >= 1000 else f"{value:.3f}"


def _dampings(fid: dict[str, Any], hessian: str) -> list[str]:
    return [k.split("/", 1)[1] for k in fid if k.startswith(f"{hessian}/")]


def _label(ax: plt.Axes, xlabel: str, ylabel: str, title: str, legend_size: int,
           log_y: bool = True) -> None:
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=legend_size)


def figure(numbers: dict[str, Any], path: Path, words: Wording) -> None:
    """Smallest eigenvalue of H at x*; relative error against λ; drift against the step."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    mus = {state: [max(v, 1e-6) for v in numbers[state]["mu_min"]] for state in STATES}
    low, high = min(min(m) for m in mus.values()), max(max(m) for m in mus.values())
    bins = [low / 1.5 * (1.5 * high / (low / 1.5)) ** (k / 30) for k in range(31)]
    for state, label in STATES.items():
        axes[0].hist(mus[state], bins=bins, histtype="step",
                     label=f"{label} ({numbers[state]['convexity']['not_pd_share']:.0%} ≤ 0)")
    _label(axes[0], "smallest eigenvalue of H at x* (≤ 1e-6 drawn at 1e-6)", words.samples,
           "Convexity at x*", 8, log_y=False)
    for state, label in STATES.items():
        fid = numbers[state]["fidelity"]
        for hessian, name in HESSIANS.items():
            damps = [d for d in _dampings(fid, hessian) if d != "auto"]
            lam = [max(float(d), 1e-5) for d in damps]
            rel = [max(fid[f"{hessian}/{d}"]["median_rel_error"], 1e-8) for d in damps]
            axes[1].plot(lam, rel, marker="o", ls="-" if hessian == "exact" else "--",
                         label=f"{label}, {name}")
    _label(axes[1], "damping λ (λ = 0 drawn at 1e-5)", "median ‖g − g_FD‖ / ‖g_FD‖",
           f"Gradient fidelity (θ = {words.theta})", 7)
    for state, label in STATES.items():
        drift = numbers[state]["drift"]
        for name, errors in drift["median_rel_error"].items():
            axes[2].plot(drift["sizes"], [max(e, 1e-8) for e in errors], marker="o",
                         ls="-" if state == "trained" else ":", label=f"{label}, {name}")
    _label(axes[2], f"optimiser step ‖Δθ‖ ({words.theta})", "median ‖Δx_pred − Δx*‖ / ‖Δx*‖",
           "Drift: predicted against re-solved move", 6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def answer(numbers: dict[str, Any], words: Wording) -> list[str]:
    """One bullet per state of θ (convexity and fidelity), one on the trained energy's drift."""
    lines = []
    for state, label in STATES.items():
        conv, fid = numbers[state]["convexity"], numbers[state]["fidelity"]
        lines.append(
            f"- **{label.capitalize()}.** H at x* was not positive definite for "
            f"{conv['not_pd_share']:.1%} of {conv['solves']} {words.samples} (median smallest "
            f"eigenvalue {fmt(conv['mu_min_median'])}, median κ(H) "
            f"{fmt(conv['kappa_median'])}); the recipe's own solve ({words.solver}) had not "
            f"converged for {conv['recipe_unconverged_share']:.1%}. λ = 0 with the exact H "
            "matched finite differences to a median relative error of "
            f"{fmt(fid['exact/0.0']['median_rel_error'])} "
            f"(at most {fmt(fid['sanity']['max_rel_error'])} over the "
            f"{fid['sanity']['count']} {words.samples} compared); the library's default "
            f"λ = 1e-2 to {fmt(fid['exact/0.01']['median_rel_error'])} (cosine ≥ 0.99 in "
            f"{fid['exact/0.01']['share_cos_99']:.0%}), λ = 1 to "
            f"{fmt(fid['exact/1.0']['median_rel_error'])}; the Gauss–Newton H at λ = 0 to "
            f"{fmt(fid['gauss_newton/0.0']['median_rel_error'])}.")
    drift = numbers["trained"]["drift"]
    errors = drift["median_rel_error"]
    lines.append(
        f"- **Drift (trained).** {words.move.capitalize()} along its descent by "
        f"‖Δθ‖ = {drift['sizes'][2]:g}, the exact linear prediction missed the re-solved move "
        f"by a median {fmt(errors['λ = 0'][2])} relative ({fmt(errors['λ = 0'][0])} at "
        f"{drift['sizes'][0]:g}, {fmt(errors['λ = 0'][-1])} at {drift['sizes'][-1]:g}); "
        f"λ = 1e-2 by {fmt(errors['λ = 1e-2'][2])}, Gauss–Newton by "
        f"{fmt(errors['Gauss–Newton, λ = 0'][2])}. A cold restart of the recipe's solver landed "
        f"on another minimum than continuation for {restarts(drift, words)}.")
    return lines


def restarts(drift: dict[str, Any], words: Wording) -> str:
    """How many cold restarts landed elsewhere: pooled over seeds where the run recorded it."""
    worst = max(drift["max_jump_share"])
    if "jump_share" not in drift:
        return f"at most {worst:.0%} of one seed's {words.samples} at any step"
    pooled = max(drift["jump_share"])
    text = (f"at most {pooled:.1%} of the {words.samples} (pooled over seeds; {worst:.0%} of "
            "one seed's) at any step")
    unsettled = max(drift["jump_unconverged_share"])
    if unsettled > 0:
        text += f", {unsettled:.1%} of them restarts whose refinement did not converge"
    return text


def jump_column(drift: dict[str, Any]) -> list[float]:
    """The drift table's restart column: pooled shares where recorded, else the worst seed's."""
    return drift.get("jump_share", drift["max_jump_share"])


def fidelity_table(numbers: dict[str, Any], words: Wording) -> list[str]:
    """Median relative error (share with cosine ≥ 0.99) per (Hessian, λ), both states."""
    fid_i, fid_t = numbers["init"]["fidelity"], numbers["trained"]["fidelity"]
    lines = ["## Gradient fidelity", "",
             f"Median relative error ‖g − g_FD‖/‖g_FD‖ (share of {words.samples} with cosine "
             "≥ 0.99):", "",
             "| Hessian, λ | " + " | ".join(STATES.values()) + " |", "|---|---|---|"]
    for key in [k for k in fid_i if "/" in k]:
        hessian, damping = key.split("/", 1)
        cells = [f"{fmt(f[key]['median_rel_error'])} ({f[key]['share_cos_99']:.0%})"
                 for f in (fid_i, fid_t)]
        lines.append(f"| {HESSIANS[hessian]}, λ = {damping} | " + " | ".join(cells) + " |")
    return [
        *lines,
        "",
        f"Valid {words.samples}: {fid_i['valid']} of {fid_i['samples']} (initial), "
        f"{fid_t['valid']} of {fid_t['samples']} (trained); median κ(H) "
        f"{fmt(fid_i['kappa_median'])} and {fmt(fid_t['kappa_median'])}. \"auto\" is "
        "λ = 1e-3 × the spectral radius of H (median "
        f"{fmt(fid_i['mu_max_median'])} and {fmt(fid_t['mu_max_median'])})."]


def drift_table(numbers: dict[str, Any], stem: str, words: Wording) -> list[str]:
    """Median relative error of each rule's predicted move per step size, trained energy."""
    drift = numbers["trained"]["drift"]
    lines = ["## Drift", "",
             "Median relative error of the predicted move of x* against the re-solved one, "
             f"trained energy (initial energy in `{stem}.json`):", "",
             "| ‖Δθ‖ | " + " | ".join(drift["median_rel_error"]) + " | restarts elsewhere |",
             "|---|" + "---|" * (len(drift["median_rel_error"]) + 1)]
    jumps = jump_column(drift)
    for i, size in enumerate(drift["sizes"]):
        cells = [fmt(errors[i]) for errors in drift["median_rel_error"].values()]
        lines.append(f"| {size:g} | " + " | ".join(cells) + f" | {jumps[i]:.1%} |")
    return [
        *lines,
        "",
        f"![Left: smallest eigenvalue of the Hessian at x* per {words.sample}, initial "
        "and trained energy. Middle: median relative error of the implicit gradient against "
        "finite differences as λ grows, exact and Gauss–Newton Hessians. Right: median "
        f"relative error of the predicted move of x* against the step size.]({stem}.png)"]



def closing(numbers: dict[str, Any], stem: str, words: Wording, ckpt: str,
            note: str) -> list[str]:
    """Hardware line, both tables, the command (with the fold's checkpoint) and ``note``."""
    cfg = numbers["config"]
    return [
        f"- **Hardware**: the 2-core development VM, one thread; {cfg['run_seconds']} s in all.",
        "",
        *fidelity_table(numbers, words),
        "",
        *drift_table(numbers, stem, words),
        "",
        *truncation_section(numbers, stem, words),
        "## Command",
        "",
        "```bash",
        f"OMP_NUM_THREADS=1 python -m studies.assumptions.{stem} --out docs/study \\",
        f"    --fold {cfg['fold']} --ckpt {ckpt.format(fold=cfg['fold'])}",
        "```",
        "",
        note,
        "",
    ]


def convexity_claim(numbers: dict[str, Any]) -> str:
    """Bold lead of the convexity conclusion, from the counts of both states."""
    states = [numbers[state]["convexity"] for state in STATES]
    total = sum(c["solves"] for c in states)
    bad = sum(round(c["not_pd_share"] * c["solves"]) for c in states)
    if bad == 0:
        return ("**The local-convexity assumption held at x\\***: H was positive definite at "
                f"all {total} minima")
    return (f"**The local-convexity assumption failed at {bad} of {total} minima** (H not "
            "positive definite)")


def truncation_section(numbers: dict[str, Any], stem: str, words: Wording) -> list[str]:
    """Part 3's solves cut short (trained energy) and a blank line; nothing where not measured."""
    trunc = numbers["trained"].get("truncation")
    if trunc is None:
        return []
    lines = ["## Solves cut short", "",
             "The recipe's own solver capped at a number of steps or loosened to a tolerance, "
             "from its own start; the implicit rule (λ = 1e-2) applied at the point it stopped, "
             "the unrolled rule through its iterations (training with `nonconverged=\"mask\"` "
             "would drop the unconverged samples instead); median relative error against the "
             f"reference gradient at the converged x*, trained energy (initial in `{stem}.json`):",
             "", "| cut | unconverged | median ‖x − x*‖ | implicit | unrolled |",
             "|---|---|---|---|---|"]
    for kind, label in (("steps", "steps ≤ {:g}"), ("tol", "‖∇ₓE‖ ≤ {:g}")):
        rows = trunc[kind]
        for i, value in enumerate(rows["value"]):
            lines.append(f"| {label.format(value)} | {rows['unconverged'][i]:.0%} | "
                         f"{fmt(rows['x_error'][i])} | {fmt(rows['implicit_rel'][i])} | "
                         f"{fmt(rows['unrolled_rel'][i])} |")
    return [*lines, ""]


def truncation_bullet(numbers: dict[str, Any], words: Wording) -> list[str]:
    """The answer's sentence on solves cut short; nothing where they were not measured."""
    trunc = numbers["trained"].get("truncation")
    if trunc is None:
        return []
    steps = trunc["steps"]
    return [
        f"- **Solves cut short (trained).** Capped at {steps['value'][0]:g} step "
        f"({steps['unconverged'][0]:.0%} of {words.samples} unconverged, median ‖x − x*‖ "
        f"{fmt(steps['x_error'][0])}), the recipe's solver gave an implicit gradient "
        f"{fmt(steps['implicit_rel'][0])} from the reference (unrolled: "
        f"{fmt(steps['unrolled_rel'][0])}); at {steps['value'][-1]:g} steps "
        f"{fmt(steps['implicit_rel'][-1])} and {fmt(steps['unrolled_rel'][-1])}."]
