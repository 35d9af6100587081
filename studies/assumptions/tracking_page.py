"""The tracking part's figure and page (``docs/study/tracking.md``) from ``tracking.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studies.assumptions.parts_page import (
    Wording,
    answer,
    closing,
    convexity_claim,
    figure,
    fmt,
    jump_column,
    truncation_bullet,
)

WORDS = Wording(sample="window", samples="windows", theta="tracker log-weight offsets",
                solver="banded IRLS, at most 300 steps",
                move="moving every tracker's log-weight in a window")
CV = ("lightning-energy cv --config recipes/tracking/otb100.yaml --config "
      "recipes/tracking/cv/protocol.yaml --grid recipes/tracking/cv/grid.yaml --folds {fold} "
      "--seeds 0 --out runs/cv/otb100")


def page(numbers: dict[str, Any], out: Path) -> None:
    """``tracking.png`` and ``tracking.md`` in ``out``."""
    figure(numbers, out / "tracking.png", WORDS)
    write(numbers, out / "tracking.md")


def _pose(path: Path) -> dict[str, Any] | None:
    """The pose page's numbers beside this page, for the comparisons; None without them."""
    pose = path.parent / "pose.json"
    return json.loads(pose.read_text()) if pose.is_file() else None


def _cost(value: float) -> str:
    """A relative error in words: what λ's bias costs the gradient."""
    return "nearly free" if value < 0.01 else "not free"


def _meaning(numbers: dict[str, Any], pose: dict[str, Any] | None) -> list[str]:
    """What the numbers mean for tracker fusion, each with its number."""
    init, trained = numbers["init"], numbers["trained"]
    fid_i, fid_t, drift = init["fidelity"], trained["fidelity"], trained["drift"]
    kappa = max(init["convexity"]["kappa_median"] or 0, trained["convexity"]["kappa_median"] or 0)
    small = max(fid_i["exact/0.01"]["median_rel_error"], fid_t["exact/0.01"]["median_rel_error"])
    autos = sorted(f["exact/auto"]["median_rel_error"] for f in (fid_i, fid_t))
    jumps = jump_column(drift)
    first_jump = next((size for size, share in zip(drift["sizes"], jumps, strict=True)
                       if share > 0), None)
    lines = [
        f"- {convexity_claim(numbers)} (48 windows in each state), although the Cauchy kernel "
        "redescends (its curvature is negative for residuals beyond δ); smallest eigenvalue, "
        "5%, 50% and 95% quantiles: "
        + ", ".join(fmt(q) for q in init["convexity"]["mu_min_quantiles"]) + " initial; "
        + ", ".join(fmt(q) for q in trained["convexity"]["mu_min_quantiles"]) + " trained.",
    ]
    if first_jump is not None:
        lines.append(
            f"- **A window can have more than one minimum**: after a step of ‖Δθ‖ = "
            f"{first_jump:g} or more, a cold restart of the recipe's solver (as training solves "
            "each batch, from the weighted median) landed on another minimum than continuation "
            f"from the old x* for up to {max(jumps):.1%} of the trained windows, pooled over "
            f"seeds (initial energy: {max(jump_column(init['drift'])):.1%}). The implicit "
            "gradient describes the minimum the solver reaches; which one that is can change "
            "between steps.")
    lines += [
        f"- **A small fixed λ is {_cost(small)}**: λ = 1e-2 costs "
        f"{fmt(fid_i['exact/0.01']['median_rel_error'])} of the gradient at the start and "
        f"{fmt(fid_t['exact/0.01']['median_rel_error'])} after training (λ = 1: "
        f"{fmt(fid_i['exact/1.0']['median_rel_error'])} and "
        f"{fmt(fid_t['exact/1.0']['median_rel_error'])}), about λ/(μ + λ) along the flattest "
        f"direction (median smallest μ {fmt(init['convexity']['mu_min_median'])} and "
        f"{fmt(trained['convexity']['mu_min_median'])}; median κ(H) at most {fmt(kappa)}).",
        f"- **\"auto\" damping costs {fmt(autos[0])}–{fmt(autos[1])}**: λ = 1e-3 × the "
        f"spectral radius (median {fmt(fid_i['mu_max_median'])} and "
        f"{fmt(fid_t['mu_max_median'])}) against that smallest curvature"
        + (f"; on the pose energy, with κ(H) ≈ {fmt(pose['trained']['fidelity']['kappa_median'])}"
           f", it cost {fmt(pose['trained']['fidelity']['exact/auto']['median_rel_error'])} "
           "([pose page](pose.md))" if pose else "")
        + ". Whether \"auto\" is safe depends on the energy's conditioning.",
        f"- **Gauss–Newton is biased by {fmt(fid_i['gauss_newton/0.0']['median_rel_error'])} "
        f"and {fmt(fid_t['gauss_newton/0.0']['median_rel_error'])} even at λ = 0**: it drops "
        "the kernel's curvature, which for a redescending kernel is negative on the outlying "
        "trackers' residuals, so it overstates H where the fusion rejects a tracker. The recipe "
        "differentiates with the exact banded Hessian (`ImplicitAdjoint(linear_solver=Banded())`).",
        f"- **How far one step stays linear**: at ‖Δθ‖ = {drift['sizes'][2]:g} the exact "
        f"prediction misses the re-solved move by {fmt(drift['median_rel_error']['λ = 0'][2])}, "
        f"at {drift['sizes'][-1]:g} by {fmt(drift['median_rel_error']['λ = 0'][-1])}"
        + (f" (pose confidences: {fmt(pose['trained']['drift']['median_rel_error']['λ = 0'][2])}"
           f" and {fmt(pose['trained']['drift']['median_rel_error']['λ = 0'][-1])})"
           if pose else "")
        + ". The recipe's energy rate 0.02 moves each base log-weight by about 0.02 per Adam "
        "step (‖Δθ‖ ≈ 0.1 over 25 trackers), besides what the network's per-frame weights move.",
    ]
    return lines


def write(numbers: dict[str, Any], path: Path) -> None:
    """The page: answer, protocol, tables, figure, command."""
    cfg = numbers["config"]
    lines = [
        "# Study on tracker fusion: convexity, gradient fidelity, drift",
        "",
        "Parts 1–3 of the [assumption study](index.md) on tracker fusion: the energy of "
        "`recipes/tracking/otb100.yaml` under its cross-validation protocol (25 trackers' boxes "
        "on OTB-100, a Cauchy kernel on each tracker's residual, first- and second-order "
        "smoothness; n = 4 × 32 = 128 variables per window), as training starts and as trained "
        f"in fold {cfg['fold']}, on windows of that fold's held-out videos. Every number below "
        "is in `tracking.json`, written with the figure and this page by the command at the "
        "end. The [pose page](pose.md) asks the same of the multi-view pose energy.",
        "",
        "## Answer",
        "",
        *answer(numbers, WORDS),
        *truncation_bullet(numbers, WORDS),
        "",
        "What this means for tracker fusion:",
        "",
        *_meaning(numbers, _pose(path)),
        "",
        "## Protocol",
        "",
        f"- **Windows**: {cfg['samples']} windows of 32 frames per seed (seeds "
        f"{', '.join(map(str, cfg['seeds']))}), drawn without replacement from the windows "
        f"(stride 16) of fold {cfg['fold']}'s test videos; both states see the same windows.",
        "- **States**: *initial* is the recipe as its own training starts, without a grid "
        "search — base weights from the training videos' AUCs at temperature 0.03 (its "
        "`TrackerWeightsFromAUC`), the feature network as initialised; *trained* is the state "
        "`lightning-energy cv` tested in the fold (seed-0 split, started from its grid search's "
        "choice, the best validation state: `best.ckpt`).",
        "- **x***: the recipe's layer (banded IRLS in float64, ≤ 300 steps, ‖∇ₓE‖ ≤ 1e-5), "
        "refined by Newton on the flattened window to ‖∇ₓE‖ ≤ 1e-10.",
        "- **θ**: a per-window offset of each of the 25 trackers' log-weights, added on every "
        "frame: the per-window form of the base log-weights b_k as the energy sees them (the "
        "feature network also reads b_k) and what its per-frame log-weights add to. "
        "The loss is the window's mean 1 − GIoU of the fused boxes against the ground truth.",
        "- **Reference gradient**: central differences (step 1e-5) of re-solved argmins, one "
        "tracker at a time; windows whose H at x* is not positive definite or whose re-solves "
        "did not converge are left out of the comparison.",
        "- **Drift**: Δθ along each window's own descent direction, the argmin re-solved from "
        "the old x*; each rule's prediction is its own dx*/dθ (128 backward passes) times Δθ; "
        "a cold restart is the recipe's banded IRLS from its own start (the weighted median).",
        *closing(numbers, "tracking", WORDS,
                 "runs/cv/otb100/fold-{fold}_seed-0/checkpoints/best.ckpt",
                 f"The checkpoint is the fold model of `{CV.format(fold=cfg['fold'])}` "
                 "([tracking results](../results/tracking.md)); the data is read from "
                 "`../shared/data`."),
    ]
    path.write_text("\n".join(lines))
