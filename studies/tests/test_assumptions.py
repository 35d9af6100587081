import json
import re

import torch

import lightning_energy as le
from studies.assumptions import __main__ as study
from studies.assumptions import cost, drift, fidelity, problems, stability


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
    for name in ("convexity.png", "fidelity.png", "drift.png", "stability.png",
                 "trajectories.png", "cost.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    page = (tmp_path / "index.md").read_text()
    assert "${" not in page
    assert not re.search(r"\bnan\b", page)


def test_each_backward_rule_reaches_training():
    """Faulty variant: the layer built with the default adjoint whatever the setting."""
    def first_gradient(name: str) -> float:
        log = stability.regression_run(3, 8, 32, 16, 1, 16, 1, 0.05, 0,
                                       stability.SETTINGS[name]())
        return log["grad_norm"][0]

    exact, unrolled, damped = (first_gradient(n) for n in ("λ = 0", "unrolled", "λ = 1"))
    assert abs(unrolled - exact) <= 1e-3 * exact  # both differentiate the converged argmin
    assert damped < 0.9 * exact  # λ = 1 shrinks the gradient along flat directions


def test_grid_search_keeps_the_best_training_point():
    """Faulty variant: the last grid point kept instead of the best one."""
    rows = cost.grid_search(3, 8, 16, 8, [3], seed=0)
    energy = problems.RobustRegression(3)
    train = problems.regression_data(16, 3, 8, seed=100)
    losses = []
    for log_w in torch.linspace(*cost.LOG_WEIGHTS, 3).tolist():
        for log_d in torch.linspace(*cost.LOG_SCALES, 3).tolist():
            with torch.no_grad():
                energy.log_weight.fill_(log_w)
                energy.log_scale.fill_(log_d)
            losses.append(cost._loss(energy, train))
    assert rows[0]["points"] == 9
    assert rows[0]["train_loss"] == min(losses)


def test_samples_whose_tight_solve_failed_leave_the_comparison():
    """Faulty variant: a reference gradient taken at an x* the tight solve never reached."""
    case = _case()
    assert bool(case.converged.all())
    case.converged = case.converged.clone()
    case.converged[0] = False
    out = fidelity.fidelity(case, ("exact",))
    assert not bool(out["valid"][0])
    capped = problems.regression_case(problems.RobustRegression(3),
                                      problems.regression_data(8, 3, 10, seed=5),
                                      le.Newton(max_steps=1, tol=1e-12, dtype="float64"))
    assert bool(capped.converged.all())  # the tight refinement itself is what counts


def test_a_step_cost_measured_again_says_so_with_the_ratios():
    """Faulty variants caught: the note on the wrong run's rows, or ratios inverted."""
    from studies.assumptions import page

    def row(n: int, mode: str, ms: float) -> dict:
        return {"variables": n, "mode": mode, "forward_ms": ms, "backward_ms": ms}

    now = {(10, "exact"): row(10, "exact", 10.0), (30, "exact"): row(30, "exact", 20.0)}
    note = page._remeasured({"date": "2026-01-02", "previous": [
        row(10, "exact", 40.0), row(30, "exact", 200.0)]}, now)
    assert note.startswith("These rows were measured again on 2026-01-02")
    assert "took 4.0–10.0× as long, 4.0–4.0× at n = 10" in note
