"""The pose part's figure and page (``docs/study/pose.md``) from ``pose.json``'s numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt

STATES = {"init": "initial energy", "trained": "trained (fold model)"}
HESSIANS = {"exact": "exact H", "gauss_newton": "Gauss–Newton"}


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


def figure(numbers: dict[str, Any], path: Path) -> None:
    """Smallest eigenvalue of H at x*; relative error against λ; drift against the step."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    mus = {state: [max(v, 1e-6) for v in numbers[state]["mu_min"]] for state in STATES}
    low, high = min(min(m) for m in mus.values()), max(max(m) for m in mus.values())
    bins = [low / 1.5 * (1.5 * high / (low / 1.5)) ** (k / 30) for k in range(31)]
    for state, label in STATES.items():
        axes[0].hist(mus[state], bins=bins, histtype="step",
                     label=f"{label} ({numbers[state]['convexity']['not_pd_share']:.0%} ≤ 0)")
    _label(axes[0], "smallest eigenvalue of H at x* (≤ 1e-6 drawn at 1e-6)", "frames",
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
           "Gradient fidelity (θ = detection confidences)", 7)
    for state, label in STATES.items():
        drift = numbers[state]["drift"]
        for name, errors in drift["median_rel_error"].items():
            axes[2].plot(drift["sizes"], [max(e, 1e-8) for e in errors], marker="o",
                         ls="-" if state == "trained" else ":", label=f"{label}, {name}")
    _label(axes[2], "optimiser step ‖Δθ‖ (confidences)", "median ‖Δx_pred − Δx*‖ / ‖Δx*‖",
           "Drift: predicted against re-solved move", 6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2g}" if abs(value) < 0.01 or abs(value) >= 1000 else f"{value:.3f}"


def write(numbers: dict[str, Any], path: Path) -> None:
    """The page: answer, protocol, tables, figure, command."""
    cfg = numbers["config"]
    init, trained = numbers["init"], numbers["trained"]
    fid_t = trained["fidelity"]
    lines = [
        "# Study on the multi-view pose task: convexity, gradient fidelity, drift",
        "",
        "Parts 1–3 of the [assumption study](index.md) on the real task: Human3.6M stacked-"
        "hourglass detections in four calibrated views and the energy of "
        "`recipes/pose/h36m_multiview.yaml` (n = 30 variables per frame), as initialised and "
        "as trained in its leave-one-subject-out fold, on test frames of the held-out "
        f"{cfg['fold']}. "
        "Every number below is in `pose.json`, written with the figure and this page by the "
        "command at the end.",
        "",
        "## Answer",
        "",
    ]
    for state, label in STATES.items():
        conv, fid = numbers[state]["convexity"], numbers[state]["fidelity"]
        lines.append(
            f"- **{label.capitalize()}.** H at x* was not positive definite for "
            f"{conv['not_pd_share']:.1%} of {conv['solves']} frames (median smallest eigenvalue "
            f"{_fmt(conv['mu_min_median'])}, median κ(H) {_fmt(conv['kappa_median'])}); the "
            f"recipe's own solve (30 LM steps) had not converged for "
            f"{conv['recipe_unconverged_share']:.1%}. λ = 0 with the exact H matched finite "
            "differences to a median relative error of "
            f"{_fmt(fid['exact/0.0']['median_rel_error'])} "
            f"(at most {_fmt(fid['sanity']['max_rel_error'])} over the {fid['sanity']['count']} "
            f"frames compared); the library's default λ = 1e-2 to "
            f"{_fmt(fid['exact/0.01']['median_rel_error'])} (cosine ≥ 0.99 in "
            f"{fid['exact/0.01']['share_cos_99']:.0%}), λ = 1 to "
            f"{_fmt(fid['exact/1.0']['median_rel_error'])}; the Gauss–Newton H at λ = 0 to "
            f"{_fmt(fid['gauss_newton/0.0']['median_rel_error'])}.")
    drift = trained["drift"]
    lines += [
        f"- **Drift (trained).** Moving every confidence of a frame along its descent by "
        f"‖Δθ‖ = {drift['sizes'][2]:g}, the exact linear prediction missed the re-solved move by "
        f"a median {_fmt(drift['median_rel_error']['λ = 0'][2])} relative "
        f"({_fmt(drift['median_rel_error']['λ = 0'][0])} at {drift['sizes'][0]:g}, "
        f"{_fmt(drift['median_rel_error']['λ = 0'][-1])} at {drift['sizes'][-1]:g}); λ = 1e-2 by "
        f"{_fmt(drift['median_rel_error']['λ = 1e-2'][2])}, Gauss–Newton by "
        f"{_fmt(drift['median_rel_error']['Gauss–Newton, λ = 0'][2])}. A cold restart of the "
        f"recipe's solver landed on another minimum than continuation for at most "
        f"{max(drift['max_jump_share']):.0%} of frames at any step.",
        "",
        "What this means for the pose task:",
        "",
        f"- **The local-convexity assumption held**: every one of the "
        f"{init['convexity']['solves'] + trained['convexity']['solves']} minima had a positive "
        "definite Hessian, before and after training; the solves left unconverged by the "
        "recipe's step cap are what `nonconverged=\"mask\"` drops in training.",
        f"- **A small fixed λ is nearly free**: the recipe's λ = 1e-2 costs "
        f"{_fmt(fid_t['exact/0.01']['median_rel_error'])} of the gradient (relative) after "
        "training, and the bias grows linearly with λ: λ/(μ + λ) along a direction of curvature μ "
        f"(median smallest μ {_fmt(trained['convexity']['mu_min_median'])}).",
        f"- **\"auto\" damping hurts here**: it scales λ to the spectral radius (median "
        f"{_fmt(fid_t['mu_max_median'])}), so with κ(H) ≈ {_fmt(fid_t['kappa_median'])} — "
        "variables in mixed units — it damps the flattest directions by far more than their "
        f"curvature: median relative error {_fmt(fid_t['exact/auto']['median_rel_error'])}, and "
        f"its predicted move of x* misses by {_fmt(drift['median_rel_error']['λ = auto'][2])}. "
        "Use a fixed λ (or rescale the variables) on ill-conditioned energies.",
        f"- **Gauss–Newton is biased even at λ = 0** "
        f"({_fmt(fid_t['gauss_newton/0.0']['median_rel_error'])}): the pseudo-Huber kernels' "
        "curvature it drops does not vanish at x*. The recipe differentiates with the exact "
        "Hessian for this reason.",
        "",
        "## Protocol",
        "",
        f"- **Frames**: {cfg['frames']} test frames of {cfg['fold']} per seed, drawn without "
        f"replacement (seeds {', '.join(map(str, cfg['seeds']))}); the initial energy and the "
        "trained fold model see the same frames.",
        "- **x***: the recipe's layer (Levenberg–Marquardt, 30 steps, every mixture component), "
        "the lowest-energy component kept and refined by Newton to ‖∇ₓE‖ ≤ 1e-10 in float64 "
        "(rounding leaves ~1e-12 at E ~ 100).",
        "- **θ**: each detection's confidence (4 views × 17 joints), which multiplies its learned "
        "weight: the quantity through which the end-to-end recipes' gradient reaches the "
        "detector. The loss is ½‖P(x*) − P_true‖² over root-aligned joints, metres.",
        "- **Reference gradient**: central differences (step 1e-5) of re-solved argmins, one "
        "confidence at a time; samples whose H at x* is not positive definite or whose re-solves "
        "did not converge are left out of the comparison.",
        "- **Drift**: Δθ along each frame's own descent direction, the argmin re-solved from the "
        "old x*; each rule's prediction is its own dx*/dθ (30 backward passes) times Δθ.",
        f"- **Hardware**: the 2-core development VM, one thread; {cfg['run_seconds']} s in all.",
        "",
        "## Gradient fidelity",
        "",
        "Median relative error ‖g − g_FD‖/‖g_FD‖ (share of frames with cosine ≥ 0.99):",
        "",
        "| Hessian, λ | " + " | ".join(STATES.values()) + " |",
        "|---|---|---|",
    ]
    fid_i = init["fidelity"]
    for key in [k for k in fid_i if "/" in k]:
        hessian, damping = key.split("/", 1)
        cells = [f"{_fmt(f[key]['median_rel_error'])} ({f[key]['share_cos_99']:.0%})"
                 for f in (fid_i, fid_t)]
        lines.append(f"| {HESSIANS[hessian]}, λ = {damping} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Valid frames: {fid_i['valid']} of {fid_i['samples']} (initial), {fid_t['valid']} of "
        f"{fid_t['samples']} (trained); median κ(H) {_fmt(fid_i['kappa_median'])} and "
        f"{_fmt(fid_t['kappa_median'])}. \"auto\" is λ = 1e-3 × the spectral radius of H "
        f"(median {_fmt(fid_i['mu_max_median'])} and {_fmt(fid_t['mu_max_median'])}).",
        "",
        "## Drift",
        "",
        "Median relative error of the predicted move of x* against the re-solved one, trained "
        "energy (initial energy in `pose.json`):",
        "",
        "| ‖Δθ‖ | " + " | ".join(drift["median_rel_error"]) + " | restarts elsewhere |",
        "|---|" + "---|" * (len(drift["median_rel_error"]) + 1),
    ]
    for i, size in enumerate(drift["sizes"]):
        cells = [_fmt(errors[i]) for errors in drift["median_rel_error"].values()]
        lines.append(f"| {size:g} | " + " | ".join(cells)
                     + f" | {drift['max_jump_share'][i]:.0%} |")
    lines += [
        "",
        "![Left: smallest eigenvalue of the Hessian at x* per frame, initial and trained energy. "
        "Middle: median relative error of the implicit gradient against finite differences as λ "
        "grows, exact and Gauss–Newton Hessians. Right: median relative error of the predicted "
        "move of x* against the step size.](pose.png)",
        "",
        "## Command",
        "",
        "```bash",
        "OMP_NUM_THREADS=1 python -m studies.assumptions.pose --out docs/study \\",
        f"    --fold {cfg['fold']} --ckpt runs/cv/pose/learned/fold-{cfg['fold']}_seed-0/"
        "checkpoints/last.ckpt",
        "```",
        "",
        "The checkpoint is the fold model of `lightning-energy cv --config "
        "recipes/pose/h36m_multiview.yaml` ([pose results](../results/pose.md)); the data is "
        "read from `../shared/data`.",
        "",
    ]
    path.write_text("\n".join(lines))
