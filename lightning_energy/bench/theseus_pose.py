"""The pose problem of ``bench pose`` written for Theseus, to compare the two libraries.

A Theseus user would write the problem this way: one ``AutoDiffCostFunction`` whose error is the
folded least-squares residual of :class:`~lightning_energy.bench.pose_problem.FoldedPoseEnergy`
(Jacobians by Theseus's vectorised autograd), the energy's inputs as auxiliary variables, a
``LevenbergMarquardt`` optimizer with a fixed number of iterations and damping, inside a
``TheseusLayer`` whose ``backward_mode`` is ``IMPLICIT`` or ``UNROLL``. Gradients reach the
energy's parameters through the error function.

Theseus is optional (the ``bench`` extra). It needs torch installed first and builds with
``pip install --no-build-isolation theseus-ai``, after Debian's ``libsuitesparse-dev`` and
``pip install --no-build-isolation scikit-sparse==0.4.16``; its cost weights default to float32,
so a float64 comparison sets them explicitly (done here).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_energy.bench.pose_problem import INPUT_FIELDS, FoldedPoseEnergy, PoseProblem
from lightning_energy.energies.pose import PoseEnergyInputs

INSTALL = ("pip install --no-build-isolation scikit-sparse==0.4.16 theseus-ai (after torch, "
           "with Debian's libsuitesparse-dev; see lightning_energy/bench/theseus_pose.py)")


def theseus_unavailable() -> str | None:
    """Why Theseus cannot be used here (None when it can)."""
    try:
        import theseus  # noqa: F401
    except Exception as error:  # an install can fail at import in many ways (missing .so, …)
        return f"theseus could not be imported ({type(error).__name__}: {error}); {INSTALL}"
    return None


class TheseusPose:
    """A ``TheseusLayer`` solving the folded pose problem for a batch, in float64.

    Args:
        problem: The batch (energy, inputs, starting points).
        steps: Levenberg–Marquardt iterations (exactly: the tolerances are 0).
        damping: Theseus's LM damping (fixed).
    """

    def __init__(self, problem: PoseProblem, steps: int, damping: float) -> None:
        import theseus as th

        self.th, self.problem, self.steps, self.damping = th, problem, steps, damping
        folded = FoldedPoseEnergy(problem.energy)
        dim = folded.residuals(problem.x0, problem.inputs).shape[1]
        x = th.Vector(tensor=problem.x0.clone(), name="x")
        aux = [th.Variable(getattr(problem.inputs, f).double(), name=f) for f in INPUT_FIELDS]

        def error(optim_vars: Any, aux_vars: Any) -> Tensor:
            tensors = {f: a.tensor for f, a in zip(INPUT_FIELDS, aux_vars, strict=True)}
            for flag in ("visible", "component"):
                tensors[flag] = tensors[flag] > 0.5
            return folded.residuals(optim_vars[0].tensor, PoseEnergyInputs(**tensors))

        weight = th.ScaleCostWeight(torch.tensor(1.0, dtype=torch.float64))
        cost = th.AutoDiffCostFunction([x], error, dim, aux_vars=aux, cost_weight=weight,
                                       name="pose", autograd_mode="vmap")
        objective = th.Objective(dtype=torch.float64)
        objective.add(cost)
        optimizer = th.LevenbergMarquardt(objective, max_iterations=steps, step_size=1.0,
                                          abs_err_tolerance=0.0, rel_err_tolerance=0.0)
        self.layer = th.TheseusLayer(optimizer).to(problem.x0.device)

    def __call__(self, backward: str) -> Tensor:
        """Solutions (B, n) after ``steps`` iterations, differentiable by ``backward``.

        ``backward`` is ``"implicit"`` or ``"unrolled"``.
        """
        mode = {"implicit": self.th.BackwardMode.IMPLICIT,
                "unrolled": self.th.BackwardMode.UNROLL}[backward]
        solution, _ = self.layer.forward(
            {"x": self.problem.x0.clone()},
            optimizer_kwargs={"backward_mode": mode, "damping": self.damping, "verbose": False})
        return solution["x"]
