"""``docs/study/index.md`` from ``page.md`` and the numbers: the page quotes nothing else."""

from __future__ import annotations

import math
import statistics
import string
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).with_name("page.md")


def pct(share: float) -> str:
    """A share as a percentage with one decimal."""
    return f"{100 * share:.1f}%"


def sci(value: float) -> str:
    """Two significant digits, scientific below 0.01."""
    return f"{value:.1e}" if abs(value) < 1e-2 else f"{value:.2g}"


def _range(values: list[float]) -> str:
    """"a–b" over seeds (one value when there is one seed)."""
    low, high = sci(min(values)), sci(max(values))
    return low if low == high else f"{low}–{high}"


def _at(values: list[Any], keys: list[Any], key: Any) -> Any:
    return values[keys.index(key)]


def fields(numbers: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    """Every ``${name}`` of the template, formatted."""
    reg, kde = numbers["regression"], numbers["kde"]
    return {"seeds": str(reg["seeds"]), "steps": str(config["steps"]),
            "n_params": str(config["n"] + 1), "num_train": str(config["num_train"]),
            "run_seconds": config["run_seconds"], **_convexity(reg, kde),
            **_fidelity(reg, kde), **_drift(reg, kde, config),
            **_truncation(reg["truncation"]), **_stability(numbers["stability"], config),
            **_cost(numbers["cost"]), **_learned(numbers)}


def _convexity(reg: dict[str, Any], kde: dict[str, Any]) -> dict[str, str]:
    conv, kconv = reg["convexity"], kde["convexity"]
    return {
        "reg_notpd_init": pct(conv["init"]["not_pd_share"]),
        "reg_notpd_trained": pct(conv["trained"]["not_pd_share"]),
        "reg_notpd_conv": str(conv["init"]["not_pd_converged"]),
        "reg_notpd_unconv": str(conv["init"]["not_pd_unconverged"]),
        "reg_unconv_init": pct(conv["init"]["unconverged_share"]),
        "kde_notpd_init": pct(kconv["init"]["not_pd_share"]),
        "kde_notpd_trained": pct(kconv["trained"]["not_pd_share"]),
        "reg_masked": pct(conv["training"]["masked_share"]),
        "reg_fallback": pct(conv["training"]["fallback_share"]),
        "reg_train_solves": str(conv["training"]["solves"]),
        "kde_masked": pct(kconv["training"]["masked_share"]),
    }


def _fidelity(reg: dict[str, Any], kde: dict[str, Any]) -> dict[str, str]:
    fid, fid_t, kfid = reg["fidelity_init"], reg["fidelity_trained"], kde["fidelity_init"]
    gn = fid["gauss_newton/0.0"]
    out = {"samples": str(fid["samples"]), "valid": str(fid["valid"]),
           "kde_samples": str(kfid["samples"]), "sanity_count": str(fid["sanity"]["count"]),
           "sanity_max": sci(fid["sanity"]["max_rel_error"]),
           "kde_sanity": sci(kfid["exact/0.0"]["median_rel_error"]),
           "kappa_median": f"{fid['kappa_median']:.0f}",
           "largest_share": pct(fid["largest_component_share"]),
           "mu_max_median": f"{fid['mu_max_median']:.3g}",
           "auto_lambda": sci(1e-3 * fid["mu_max_median"]),
           "gn_cos": pct(gn["share_cos_99"]), "gn_rel": sci(gn["median_rel_error"]),
           "gn_rel_lo": sci(gn["by_kappa"]["1-100"]["median_rel_error"]),
           "gn_rel_seeds": _range(gn["per_seed_median_rel_error"])}
    for label, key in (("0", "0.0"), ("4", "0.0001"), ("3", "0.001"), ("2", "0.01"),
                       ("1", "0.1"), ("one", "1.0"), ("auto", "auto")):
        row = fid[f"exact/{key}"]
        out[f"cos_{label}"] = pct(row["share_cos_99"])
        out[f"rel_{label}"] = sci(row["median_rel_error"])
        out[f"rel_{label}_seeds"] = _range(row["per_seed_median_rel_error"])
        out[f"kde_rel_{label}"] = sci(kfid[f"exact/{key}"]["median_rel_error"])
        for name, bin_key in (("lo", "1-100"), ("hi", "1000-inf")):
            out[f"rel_{label}_{name}"] = sci(row["by_kappa"][bin_key]["median_rel_error"])
            out[f"cos_{label}_{name}"] = pct(row["by_kappa"][bin_key]["share_cos_99"])
        out[f"cos_{label}_trained"] = pct(fid_t[f"exact/{key}"]["share_cos_99"])
        out[f"rel_{label}_trained"] = sci(fid_t[f"exact/{key}"]["median_rel_error"])
    return out


def _drift(reg: dict[str, Any], kde: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    drift, kdrift, size = reg["drift"], kde["drift"], config["drift_size"]
    errors, sizes = drift["median_rel_error"], drift["sizes"]
    out = {"drift_size": f"{size:g}", "adam_step": f"{config['adam_step']:.2f}",
           "jump_max": pct(max(drift["max_jump_share"])),
           "size_small": f"{sizes[0]:g}", "size_big": f"{sizes[-1]:g}",
           "kd0_step": sci(_at(kdrift["median_rel_error"]["λ = 0"], kdrift["sizes"], size)),
           "kd2_small": sci(kdrift["median_rel_error"]["λ = 1e-2"][0])}
    for name, key in (("d0", "λ = 0"), ("d2", "λ = 1e-2"), ("dauto", "λ = auto"),
                      ("dgn", "Gauss–Newton, λ = 0")):
        out[f"{name}_small"] = sci(errors[key][0])
        out[f"{name}_step"] = sci(_at(errors[key], sizes, size))
        out[f"{name}_big"] = sci(errors[key][-1])
    return out


def _truncation(trunc: dict[str, Any]) -> dict[str, str]:
    steps, tols = trunc["steps"], trunc["tol"]
    budgets = steps["value"]
    full = [b for b, c in zip(budgets, steps["unrolled"], strict=True) if c >= 0.99]
    # The second budget: cut short, yet more than a single step.
    small = budgets[1] if len(budgets) > 1 else budgets[0]
    return {
        "unrolled_99": str(full[0]) if full else "none of the budgets",
        "budget_small": str(small), "budget_first": str(budgets[0]),
        "trunc_imp_small": f"{_at(steps['implicit'], budgets, small):.2f}",
        "trunc_unr_small": f"{_at(steps['unrolled'], budgets, small):.2f}",
        "trunc_xerr_small": sci(_at(steps["x_error"], budgets, small)),
        "trunc_xerr_first": sci(steps["x_error"][0]),
        "trunc_imp_rel_small": sci(_at(steps["implicit_rel"], budgets, small)),
        "trunc_unr_rel_small": sci(_at(steps["unrolled_rel"], budgets, small)),
        "trunc_conv_small": pct(1 - _at(steps["unconverged"], budgets, small)),
        "tol_loose": f"{tols['value'][0]:g}",
        "tol_imp": f"{tols['implicit'][0]:.3f}", "tol_unr": f"{tols['unrolled'][0]:.3f}",
        "tol_xerr": sci(tols["x_error"][0]),
        "tol_imp_rel": sci(tols["implicit_rel"][0]),
        "tol_unr_rel": sci(tols["unrolled_rel"][0]),
    }


def _stability(stab: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    lines = ["| backward rule | final evaluation loss, median [min–max] | largest ‖dL/dθ‖ | "
             "masked solves | seconds per run |", "|---|---|---|---|---|"]
    for name, row in stab.items():
        final = row["final_eval_loss"]
        lines.append(f"| {name} | {row['final_eval_loss_median']:.3f} [{min(final):.3f}–"
                     f"{max(final):.3f}] | {row['largest_grad_norm']:.3g} | "
                     f"{pct(row['masked_share'])} | {row['seconds_median']:.0f} |")
    finals = {name: row["final_eval_loss_median"] for name, row in stab.items()}
    seed_spreads = [max(r["final_eval_loss"]) - min(r["final_eval_loss"]) for r in stab.values()]
    best = min(finals, key=finals.__getitem__)
    implicit = {k: v for k, v in finals.items() if k.startswith("λ")}
    worst = max(implicit, key=implicit.__getitem__)
    ratio = stab["unrolled"]["seconds_median"] / stab["λ = 1e-2"]["seconds_median"]
    return {"stab_table": "\n".join(lines), "stab_steps": str(config["stability_steps"]),
            "stab_best": best, "stab_best_loss": f"{finals[best]:.3f}",
            "stab_worst_implicit": worst, "stab_worst_loss": f"{finals[worst]:.3f}",
            "stab_exact_loss": f"{finals['λ = 0']:.3f}",
            "stab_unrolled_loss": f"{finals['unrolled']:.3f}",
            "stab_default_loss": f"{finals['λ = 1e-2']:.3f}",
            "stab_unrolled_ratio": f"{ratio:.1f}",
            "stab_all_finite": "Every" if all(r["finite"] for r in stab.values()) else "Not every",
            "stab_spread": f"{max(finals.values()) - min(finals.values()):.3f}",
            "seed_spread": f"{statistics.median(seed_spreads):.2f}",
            "stab_gn_0": f"{stab['λ = 0']['largest_grad_norm']:.3g}",
            "stab_gn_one": f"{stab['λ = 1']['largest_grad_norm']:.3g}",
            "batch": str(config["batch"]), "every": str(config["every"]),
            "adam_lr": f"{config['adam_lr']:g}",
            "scaling_batch": str(config["scaling_batch"]),
            "scaling_repeats": str(config["scaling_repeats"])}


def _remeasured(again: dict[str, Any], by: dict[tuple[int, str], dict[str, Any]]) -> str:
    """The note under a step-cost table measured again after the page's run."""
    def total(r: dict[str, Any]) -> float:
        return r["forward_ms"] + r["backward_ms"]

    ratios = {(r["variables"], r["mode"]): total(r) / total(by[(r["variables"], r["mode"])])
              for r in again["previous"]}
    smallest = min(n for n, _ in ratios)
    small = [v for (n, _), v in ratios.items() if n == smallest]
    return (f"These rows were measured again on {again['date']} by "
            "`lightning_energy.bench.scaling.measure` alone, on the otherwise idle VM, after dense "
            "derivatives on a CPU came to be chosen by size ([benchmarks](../benchmarks.md#how-"
            "the-batch-hessian-is-built)); the rest of the page comes from the run below. That "
            f"run's steps took {min(ratios.values()):.1f}–{max(ratios.values()):.1f}× as long, "
            f"{min(small):.1f}–{max(small):.1f}× at n = {smallest}, which the rule leaves on the "
            "loop: part of the difference is not the rule (that run's machine load, other changes "
            "since).")


def _cost(cost: dict[str, Any]) -> dict[str, str]:
    grid = cost["grid"]
    seeds = len(grid["learned_eval_loss"])
    lines = ["| search | points | evaluation loss (median) | seconds (median) | "
             "seeds within 1% of learned |", "|---|---|---|---|---|"]
    for row in grid["grid"]:
        lines.append(f"| grid {row['k']} × {row['k']} | {row['points']} | "
                     f"{row['eval_loss_median']:.3f} | {row['seconds_median']:.0f} | "
                     f"{row['matched_seeds']} of {seeds} |")
    lines.append(f"| learned θ (λ = 1e-2) | – | {grid['learned_eval_loss_median']:.3f} | "
                 f"{grid['learned_seconds_median']:.0f} | – |")
    matched = [r for r in grid["grid"] if r["matched_seeds"] == seeds]
    some = [r for r in grid["grid"] if r["matched_seeds"] > 0]
    first = (f"a {some[0]['k']} × {some[0]['k']} grid ({some[0]['points']} points, "
             f"{some[0]['seconds_median']:.0f} s against {grid['learned_seconds_median']:.0f} s "
             f"of training) came within 1% of the learned θ on {some[0]['matched_seeds']} of "
             f"{seeds} seeds" if some else "no grid came within 1% of the learned θ")
    steps = ["| n | mode | forward ms | backward ms | memory MB |", "|---|---|---|---|---|"]
    for r in cost["step_cost"]:
        steps.append(f"| {r['variables']} | {r['mode'].replace('_', '–')} | "
                     f"{r['forward_ms']:.0f} | {r['backward_ms']:.0f} | {r['memory_mb']:.2f} |")
    by = {(r["variables"], r["mode"]): r for r in cost["step_cost"]}
    largest = max(r["variables"] for r in cost["step_cost"])

    def ratio(mode: str) -> float:  # backward time against Gauss–Newton's at the largest n
        return by[(largest, mode)]["backward_ms"] / by[(largest, "gauss_newton")]["backward_ms"]

    if "step_cost_remeasured" in cost:  # a later run of the step cost alone
        steps.append("\n" + _remeasured(cost["step_cost_remeasured"], by))
    return {"grid_table": "\n".join(lines), "step_table": "\n".join(steps),
            "grid_first_match": first,
            "grid_match": (f"a {matched[0]['k']} × {matched[0]['k']} grid "
                           f"({matched[0]['points']} points, {matched[0]['seconds_median']:.0f} s)"
                           if matched else "none of the grids"),
            "grid_best": f"{min(r['eval_loss_median'] for r in grid['grid']):.3f}",
            "learned_loss": f"{grid['learned_eval_loss_median']:.3f}",
            "learned_seconds": f"{grid['learned_seconds_median']:.0f}",
            "scale_n": str(largest),
            "scale_exact_gn": f"{ratio('exact'):.1f}", "scale_cg_gn": f"{ratio('cg'):.1f}"}


def _learned(numbers: dict[str, Any]) -> dict[str, str]:
    theta = numbers["trajectories"]
    last = [run[-1] for run in theta["regression"]]  # per seed
    log_w = [w for final in last for w in final[:-1]]
    return {"delta_final": _range([math.exp(final[-1]) for final in last]),
            "w_final_lo": sci(math.exp(min(log_w))), "w_final_hi": sci(math.exp(max(log_w))),
            "sigma_final": _range([math.exp(run[-1][0]) for run in theta["kde"]])}


def write(numbers: dict[str, Any], config: dict[str, Any], out: Path) -> None:
    """Fill the template; a field it names that :func:`fields` lacks raises ``KeyError``."""
    text = string.Template(TEMPLATE.read_text()).substitute(fields(numbers, config))
    (out / "index.md").write_text(text)
