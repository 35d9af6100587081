"""The pose part's figure and page (``docs/study/pose.md``) from ``pose.json``'s numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studies.assumptions.parts_page import Wording, answer, closing, convexity_claim, figure
from studies.assumptions.parts_page import fmt as _fmt

WORDS = Wording(sample="frame", samples="frames", theta="detection confidences",
                solver="30 LM steps", move="moving every confidence of a frame")


def page(numbers: dict[str, Any], out: Path) -> None:
    """``pose.png`` and ``pose.md`` in ``out``."""
    figure(numbers, out / "pose.png", WORDS)
    write(numbers, out / "pose.md")


def write(numbers: dict[str, Any], path: Path) -> None:
    """The page: answer, protocol, tables, figure, command."""
    cfg = numbers["config"]
    trained = numbers["trained"]
    fid_t = trained["fidelity"]
    drift = trained["drift"]
    lines = [
        "# Study on the multi-view pose task: convexity, gradient fidelity, drift",
        "",
        "Parts 1–3 of the [assumption study](index.md) on the real task: Human3.6M stacked-"
        "hourglass detections in four calibrated views and the energy of "
        "`recipes/pose/h36m_multiview.yaml` (n = 30 variables per frame), as initialised and "
        "as trained in its leave-one-subject-out fold, on test frames of the held-out "
        f"{cfg['fold']}. "
        "Every number below is in `pose.json`, written with the figure and this page by the "
        "command at the end. The [tracker-fusion page](tracking.md) asks the same of a "
        "banded energy with a redescending kernel.",
        "",
        "## Answer",
        "",
        *answer(numbers, WORDS),
        "",
        "What this means for the pose task:",
        "",
        f"- {convexity_claim(numbers)}, before and after training; the solves left "
        "unconverged by the recipe's step cap are what `nonconverged=\"mask\"` drops in training.",
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
        f"- **Frames**: {cfg['samples']} test frames of {cfg['fold']} per seed, drawn without "
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
        *closing(numbers, "pose", WORDS,
                 "runs/cv/pose/learned/fold-{fold}_seed-0/checkpoints/last.ckpt",
                 "The checkpoint is the fold model of `lightning-energy cv --config "
                 "recipes/pose/h36m_multiview.yaml` ([pose results](../results/pose.md)); the "
                 "data is read from `../shared/data`."),
    ]
    path.write_text("\n".join(lines))
