import json
import re

import torch

import lightning_energy as le
from studies.assumptions import __main__ as study
from studies.assumptions import drift, fidelity, problems


def _case() -> problems.Case:
    energy = problems.RobustRegression(3)
    data = problems.regression_data(24, 3, 10, seed=5)
    return problems.regression_case(energy, data, problems.tight_newton())


def test_undamped_gradient_matches_finite_differences_and_bias_grows_with_damping():
    """Faulty variant: a reference or per-sample gradient that is off (wrong sign, wrong θ)."""
    case = _case()
    out = fidelity.fidelity(case, ("exact",))
    kappa = out["mu_max"] / out["mu_min"]
    well = out["valid"] & (kappa < 100)
    assert int(well.sum()) >= 5
    assert float(out["exact/0.0"]["rel_error"][well].max()) < 1e-5
    medians = [float(out[f"exact/{lam}"]["rel_error"][out["valid"]].median())
               for lam in (1e-4, 1e-2, 1.0)]
    assert medians[0] < medians[1] < medians[2]


def test_exact_linear_prediction_is_first_order_in_the_step():
    """Faulty variant: Δx* predicted from the wrong Jacobian or compared at the wrong θ."""
    case = _case()
    direction = torch.randn(1, case.theta.shape[1], dtype=torch.float64).expand_as(case.theta)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    out = drift.step_drift(case, direction, [1e-4, 1e-2], {"0": le.ImplicitAdjoint(0.0)},
                           problems.tight_newton())
    small, large = out["median_rel_error"]["0"]
    assert small < 1e-3
    assert 10 * small < large


def test_command_writes_numbers_figures_and_a_filled_page(tmp_path):
    """Faulty variant: a page field left unfilled or a figure not written."""
    numbers = study.main(["--out", str(tmp_path), "--tiny"])
    assert json.loads((tmp_path / "numbers.json").read_text())["regression"]["seeds"] == 1
    assert numbers["kde"]["fidelity_init"]["samples"] == 16
    for name in ("convexity.png", "fidelity.png", "drift.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    page = (tmp_path / "index.md").read_text()
    assert "${" not in page
    assert not re.search(r"\bnan\b", page)
