from pathlib import Path

import pytest

import lightning_energy as le
from studies.assumptions import fidelity, pose

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.skipif(not (DATA / "h36m_multiview_sh").exists(),
                    reason=f"real data absent ({DATA / 'h36m_multiview_sh'})")
def test_pose_reference_gradient_matches_the_undamped_implicit_one():
    """Faulty variant: x* not a minimum of the picked component, the confidences not reaching the
    energy, or the loss target built with the wrong sign (the FD and λ = 0 gradients disagree)."""
    task, data = pose.load_task("S8", None)
    case, _ = pose.pose_case(task, pose.test_batch(data, 2, 0))
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
    assert float(fidelity.compare(undamped, reference)["rel_error"].max()) < 1e-4
    assert float(fidelity.compare(damped, reference)["rel_error"].min()) > 1e-3
