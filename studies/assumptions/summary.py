"""The numbers the page quotes, pooled over seeds, from :func:`studies.assumptions.run.run_all`."""

from __future__ import annotations

import itertools
import statistics
from typing import Any

import torch

from studies.assumptions.fidelity import DAMPINGS

KAPPA_BINS = (1.0, 1e2, 1e3, float("inf"))
"""Condition-number bins of H at x* (|μ_max|/μ_min) that the fidelity figure separates."""
WELL_CONDITIONED = 1e3
"""κ(H) below which λ = 0 must match finite differences: the sanity check of the reference."""


def pooled(seeds: list[dict[str, Any]], part: str, key: str) -> torch.Tensor:
    """One per-sample tensor of ``seeds[i][part][key]`` over all seeds."""
    return torch.cat([s[part][key] for s in seeds])


def fidelity_numbers(seeds: list[dict[str, Any]], part: str) -> dict[str, Any]:
    """Per (Hessian, λ): share with cosine ≥ 0.99, median relative error, by κ bin too."""
    valid = pooled(seeds, part, "valid")
    kappa = pooled(seeds, part, "mu_max") / pooled(seeds, part, "mu_min")
    configs = [k for k in seeds[0][part] if "/" in k]
    reference = pooled(seeds, part, "reference")[valid]
    # A cosine says little when one component carries the gradient: report how much it does.
    largest = (reference**2).max(-1).values / (reference**2).sum(-1)
    out: dict[str, Any] = {"samples": int(valid.numel()), "valid": int(valid.sum()),
                           "kappa_median": float(kappa[valid].median()),
                           "mu_max_median": _median(pooled(seeds, part, "mu_max")[valid]),
                           "largest_component_share": _median(largest)}
    for config in configs:
        cos = torch.cat([s[part][config]["cosine"] for s in seeds])[valid]
        rel = torch.cat([s[part][config]["rel_error"] for s in seeds])[valid]
        bins = {}
        for lo, hi in itertools.pairwise(KAPPA_BINS):
            inside = (kappa[valid] >= lo) & (kappa[valid] < hi)
            bins[f"{lo:g}-{hi:g}"] = {"count": int(inside.sum()),
                                      "median_rel_error": _median(rel[inside]),
                                      "share_cos_99": _mean(cos[inside] >= 0.99)}
        out[config] = {"share_cos_99": _mean(cos >= 0.99), "median_cosine": _median(cos),
                       "median_rel_error": _median(rel), "by_kappa": bins,
                       "per_seed_median_rel_error": _per_seed(seeds, part, config)}
    well = valid & (kappa < WELL_CONDITIONED)
    rel0 = torch.cat([s[part]["exact/0.0"]["rel_error"] for s in seeds])
    out["sanity"] = {"count": int(well.sum()),
                     "max_rel_error": float(rel0[well].max()) if bool(well.any()) else None}
    return out


def convexity_numbers(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of non-positive-definite H at x*, at init and after training; what the layer did."""
    first, last = 0, max(seeds[0]["training"]["census"])
    out: dict[str, Any] = {}
    for name, step in (("init", first), ("trained", last)):
        mu = torch.cat([s["training"]["census"][step]["mu"][:, 0] for s in seeds])
        conv = torch.cat([s["training"]["census"][step]["converged"] for s in seeds])
        bad = mu <= 0
        out[name] = {"solves": int(mu.numel()), "not_pd_share": _mean(bad),
                     "not_pd_converged": int((bad & conv).sum()),
                     "not_pd_unconverged": int((bad & ~conv).sum()),
                     "unconverged_share": _mean(~conv), "mu_min_median": _median(mu)}
    solves = sum(sum(s["training"]["solves"]) for s in seeds)
    out["training"] = {"solves": solves,
                       "masked_share": sum(sum(s["training"]["masked"]) for s in seeds) / solves,
                       "fallback_share": sum(sum(s["training"]["fallbacks"]) for s in seeds)
                       / solves}
    return out


def drift_numbers(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over seeds of each adjoint's median prediction error, per step size."""
    sizes = seeds[0]["drift"]["sizes"]
    names = list(seeds[0]["drift"]["median_rel_error"])
    errors = {name: [_median(torch.tensor([s["drift"]["median_rel_error"][name][i]
                                           for s in seeds])) for i in range(len(sizes))]
              for name in names}
    jumps = [max(s["drift"]["jump_share"][i] for s in seeds) for i in range(len(sizes))]
    out = {"sizes": sizes, "median_rel_error": errors, "max_jump_share": jumps}
    if "jump_unconverged_share" in seeds[0]["drift"]:  # runs that record it: pooled shares too
        for key, name in (("jump_share", "jump_share"),
                          ("jump_unconverged_share", "jump_unconverged_share")):
            out[name] = [statistics.fmean(s["drift"][key][i] for s in seeds)
                         for i in range(len(sizes))]
    return out


def truncation_numbers(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over seeds of the truncated solves' median cosines and unconverged shares."""
    out: dict[str, Any] = {}
    for kind in seeds[0]["truncation"]:
        rows = [s["truncation"][kind] for s in seeds]
        out[kind] = {"value": rows[0]["value"]}
        for key in ("implicit", "unrolled", "implicit_rel", "unrolled_rel", "unconverged",
                    "x_error"):
            out[kind][key] = [_median(torch.tensor([r[key][i] for r in rows]))
                              for i in range(len(rows[0]["value"]))]
    return out


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every number of the page, JSON-ready."""
    out: dict[str, Any] = {"dampings": [str(d) for d in DAMPINGS]}
    for toy, seeds in results.items():
        out[toy] = {"seeds": len(seeds), "convexity": convexity_numbers(seeds),
                    "fidelity_init": fidelity_numbers(seeds, "fidelity_init"),
                    "fidelity_trained": fidelity_numbers(seeds, "fidelity_trained"),
                    "drift": drift_numbers(seeds)}
        if "truncation" in seeds[0]:
            out[toy]["truncation"] = truncation_numbers(seeds)
    return out


def _per_seed(seeds: list[dict[str, Any]], part: str, config: str) -> list[float]:
    """Each seed's median relative error over its valid samples: the spread behind a pool."""
    return [_median(s[part][config]["rel_error"][s[part]["valid"]]) for s in seeds]


def _median(values: torch.Tensor) -> float:
    return float(values.double().median()) if values.numel() else float("nan")


def _mean(mask: torch.Tensor) -> float:
    return float(mask.double().mean()) if mask.numel() else float("nan")
