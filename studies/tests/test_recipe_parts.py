import json
import types
from pathlib import Path

import pytest
import torch

import lightning_energy as le
from studies.assumptions import (
    drift,
    fidelity,
    parts_page,
    pose,
    pose_page,
    problems,
    recipe_parts,
    tracking,
    tracking_page,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _toy_parts(page) -> recipe_parts.Parts:
    def case(task, batch):
        energy = problems.RobustRegression(3)
        data = problems.regression_data(8, 3, 10, seed=batch)
        toy = problems.regression_case(energy, data, problems.tight_newton())
        return toy, toy.x_star.new_ones(8, dtype=bool)

    return recipe_parts.Parts(name="toy", recipe=(), fold_option="", fold="", ckpt="",
                              samples=8, sizes=(1e-3, 1e-2, 0.1), batch=lambda d, n, s: s,
                              case=case, page=page, truncated=drift.newton_budget,
                              budgets=(1, 30), tols=(1e-1,))


@pytest.mark.parametrize("page", [pose_page, tracking_page], ids=["pose", "tracking"])
def test_parts_pages_are_filled_from_the_numbers(tmp_path, page):
    """Faulty variant: a page or figure that reads a number the runs do not write (KeyError),
    or a state's numbers that never reach the page."""
    parts = _toy_parts(page.page)
    task = types.SimpleNamespace(layer=types.SimpleNamespace(solver=problems.tight_newton()))
    numbers = {"config": {"fold": "F", "samples": 8, "seeds": [0, 1], "sizes": [1e-3, 1e-2, 0.1],
                          "run_seconds": 1}}
    for state, seed in (("init", 1), ("trained", 2)):
        numbers[state] = recipe_parts.summarise(
            [recipe_parts.run_seed(parts, task, seed + 10 * k) for k in range(2)])
    numbers = json.loads(json.dumps(numbers))  # as the page reads it back
    (tmp_path / "pose.json").write_text(json.dumps(numbers))  # the tracking page compares
    page.page(numbers, tmp_path)
    stem = "pose" if page is pose_page else "tracking"
    assert (tmp_path / f"{stem}.png").stat().st_size > 10_000
    text = (tmp_path / f"{stem}.md").read_text()
    assert f"of {numbers['init']['convexity']['solves']}" in text
    exact = numbers["trained"]["fidelity"]["exact/0.01"]["median_rel_error"]
    assert parts_page.fmt(exact) in text
    assert "nan" not in text
    if page is tracking_page:
        first = numbers["trained"]["truncation"]["steps"]["implicit_rel"][0]
        assert "| steps ≤ 1 | " in text
        assert f"gave an implicit gradient {parts_page.fmt(first)} from" in text
        pose_auto = numbers["trained"]["fidelity"]["exact/auto"]["median_rel_error"]
        assert f"it cost {parts_page.fmt(pose_auto)} ([pose page](pose.md))" in text


def _pose_case():
    task, data = pose.load_task("S8", None)
    return pose.pose_case(task, pose.test_batch(data, 2, 0))


def _tracking_case():
    task, data = recipe_parts.load_task(tracking.PARTS, "0", None)
    # The initial task starts from the training AUCs (the recipe's InitStep), not uniform.
    assert float(task.layer.energy.log_tracker_weight.detach().std()) > 0.1
    return tracking.tracking_case(task, tracking.test_windows(data, 2, 0))


@pytest.mark.parametrize(("folder", "make_case"), [
    ("h36m_multiview_sh", _pose_case), ("otb100_tracker_fusion", _tracking_case)],
    ids=["pose", "tracking"])
def test_reference_gradient_matches_the_undamped_implicit_one(folder, make_case):
    """Faulty variant: x* not a minimum of the sample's problem, θ not reaching the energy, or
    the loss target built with the wrong sign (the FD and λ = 0 gradients disagree)."""
    if not (DATA / folder).exists():
        pytest.skip(f"real data absent ({DATA / folder})")
    case, converged = make_case()
    assert converged.dtype == torch.bool
    # The solver's view of E (parameters cast to float64 before any arithmetic) is at a minimum.
    again = case.solve(case.theta)
    assert bool(again.converged.all())
    assert int(again.num_steps.max()) == 0
    jac, ok = fidelity.fd_jacobian(case)
    assert bool(ok.all())
    reference = fidelity.loss_gradient(jac, case)
    assert float(reference.norm(dim=-1).min()) > 0
    undamped = fidelity.adjoint_gradient(case, le.ImplicitAdjoint(0.0))
    damped = fidelity.adjoint_gradient(case, le.ImplicitAdjoint(1.0))
    assert float(fidelity.compare(undamped, reference)["rel_error"].max()) < 1e-3
    assert float(fidelity.compare(damped, reference)["rel_error"].min()) > 1e-3
