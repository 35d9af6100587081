"""The multi-view pose problem of ``bench pose``: the library's energy on a batch of frames.

The energy is :class:`~lightning_energy.energies.pose.MultiViewPoseEnergy` (one PPCA component,
25 bases: n = 30 variables, m = 4·17·2 + 26 = 162 residuals, a pseudo-Huber kernel on each
joint's 2D residual norm), on stacked-hourglass detections of Human3.6M S1 when the data is
staged and on synthetic frames (the built-in tiny PPCA model) otherwise. Another library sees
the same energy as a plain least-squares problem: :class:`FoldedPoseEnergy` folds the kernel
into the residuals, e = r·√(ρ(s)/s) for each joint's pair, so that ½‖e‖² is the same energy with
the same minimiser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lightning_energy.datasets.h36m import load_h36m
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.energies.base import LeastSquaresEnergy
from lightning_energy.energies.pose import MultiViewPoseEnergy, PoseEnergyInputs, pose_energy_inputs

DATA_ROOT = "../shared/data/h36m_multiview_sh"
PPCA_ROOT = "../shared/data/wibergian_ppca"


@dataclass
class PoseProblem:
    """A batch of pose problems.

    Attributes:
        energy: The energy (float64), one component.
        inputs: Its inputs for B frames.
        x0: Starting points (B, n) (triangulated yaw and centroid).
        source: ``"Human3.6M S1"`` or ``"synthetic"``.
    """

    energy: MultiViewPoseEnergy
    inputs: PoseEnergyInputs
    x0: Tensor
    source: str


def pose_problem(batch_size: int, data_root: str = DATA_ROOT, ppca_root: str = PPCA_ROOT,
                 device: str | torch.device = "cpu") -> PoseProblem:
    """``batch_size`` frames (cycled if the data has fewer) and the energy, on ``device``."""
    real = Path(data_root, "S1").is_dir() and Path(ppca_root, "model_parameters.h5").is_file()
    if real:
        arrays = load_h36m(data_root, ["S1"], max_frames_per_subject=batch_size)
        energy = MultiViewPoseEnergy(ppca_root, num_components=3)
        energy = _first_component(energy)
    else:
        arrays = generate_synthetic_poses(batch_size, seed=0)
        energy = MultiViewPoseEnergy(None, num_components=1, num_bases=25)
    index = torch.arange(batch_size) % len(arrays)
    batch = arrays.to_batch(index.numpy(), dtype=torch.float64)
    energy = energy.double().to(device)
    inputs = pose_energy_inputs(batch, energy.num_components)
    inputs = PoseEnergyInputs(*(getattr(inputs, f).to(device) for f in INPUT_FIELDS))
    x0 = energy.initial_solution(inputs).double()
    return PoseProblem(energy, inputs, x0, "Human3.6M S1" if real else "synthetic")


INPUT_FIELDS = ("joints2d", "visible", "R", "T", "f", "component")
"""The fields of :class:`PoseEnergyInputs`, in constructor order."""


def _first_component(energy: MultiViewPoseEnergy) -> MultiViewPoseEnergy:
    """A one-component energy holding ``energy``'s first PPCA component."""
    single = MultiViewPoseEnergy(None, num_components=1, num_bases=energy.num_bases)
    state = {k: v[:1] if k in ("mean", "bases", "log_std") else v
             for k, v in energy.state_dict().items()}
    single.load_state_dict(state)
    return single


class FoldedPoseEnergy(LeastSquaresEnergy):
    """The pose energy as plain least squares: the kernel folded into the residuals.

    For each joint's residual pair (r₁, r₂), s = r₁² + r₂², the folded residuals are
    r·√(ρ(s)/s) (→ r as s → 0), so ½‖e‖² equals the pose energy; the prior rows are unchanged.
    Its parameters are the wrapped energy's.
    """

    def __init__(self, energy: MultiViewPoseEnergy) -> None:
        super().__init__(None)
        self.pose = energy
        self.solution_shape = energy.solution_shape

    def residuals(self, x: Tensor, inputs: PoseEnergyInputs) -> Tensor:  # noqa: D102
        r = self.pose.residuals(x, inputs)
        m = self.pose.num_views * self.pose.num_joints * 2
        pairs = r[:, :m].reshape(x.shape[0], -1, 2)
        s = (pairs**2).sum(-1, keepdim=True)
        # ρ(s)/s is 1 at s = 0; evaluate it away from 0 only, so no 0/0 reaches autograd.
        safe = torch.where(s > 1e-12, s, torch.ones_like(s))
        ratio = torch.where(s > 1e-12, self.pose.kernel(safe) / safe, torch.ones_like(s))
        return torch.cat([(pairs * ratio.sqrt()).flatten(1), r[:, m:]], 1)

    def initial_solution(self, inputs: PoseEnergyInputs) -> Tensor:  # noqa: D102
        return self.pose.initial_solution(inputs)
