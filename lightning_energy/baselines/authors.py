"""The Wibergian-learning authors' trained parameters, read and mapped into our pose energy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lightning_energy.datasets.pose_batch import UNDETECTED_JOINT
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.energies.ppca import PPCAModel, joint_major, ppca_file, read_h5


def load_avg_cameras(root: str | Path | None = None, dtype: torch.dtype = torch.float64) -> Tensor:
    """(4, 3, 3) world→camera rotations averaged over subjects (``avg_cameras.h5``)."""
    return torch.as_tensor(read_h5(ppca_file(root, "avg_cameras.h5"))["cams"], dtype=dtype)


@dataclass
class AuthorsTrainedParameters:
    """The Wibergian-learning checkpoint (epoch 6, 3 components) with its scalings undone.

    Shapes use M = 3 components, L = 25 bases, J = 17 joints, C = 4 cameras.

    Attributes:
        mean: (M, J, 3) trained mean poses, mm (``mean_pose`` × ``mod_mu``).
        bases: (M, L, J, 3) trained bases (``base_vectors`` × ``mod_e``; no longer orthonormal).
        prior_matrix: (M, 29, 29) prior matrix (``sigma_variance`` × ``mod_lambda``); initially
            diag(0, 1e-5, 1e-5, 1e-5, sigma[m]) over the coefficients (scale, 3 translations,
            25 bases). The energy multiplies it by ``lambda_0``.
        joint_weights: (M, J, 2) weight per joint and image axis on the reprojection residual.
        camera_multipliers: (C, 3, 3) trained element-wise multipliers (``cameras``).
        avg_cameras: (C, 3, 3) averaged rotations (``avg_cameras.h5``).
        cameras: (C, 3, 3) effective view matrices ``camera_multipliers ⊙ avg_cameras``; rows
            0–1 are ≈ 11 × a rotation (they absorb the 2D normalisation), row 2 is unused.
        component_scale: (M,) ``sigma_3[:, 25]`` of the untrained PPCA file.
        lambda_0: (M,) multiplier of the prior matrix.
        lambda_scale: (M,) multiplier of ``component_scale`` in the reprojection weight.
        exp_weights: (M,) temperature of the soft-min over rotations.
        exp_weights_model: (M,) temperature of the soft-min over components.
        exp_additive_model: (M,) additive bias of the soft-min over components.
        hl_params: (M,) pseudo-Huber parameter; δ = 0.1 · hl_params (:attr:`huber_delta`).
        ir_reg: (M,) prior weight parameter; the energy uses 0.75 · ir_reg (:attr:`prior_weight`).
        scale_regularizer: () target parameter of the scale prior row (:attr:`prior_target`).
        scaling_coefficient: () global scale of the unit-limb-norm output pose.
        mod_mu: mean |mu_3| = 154.835 mm, the divisor undone on ``mean``.
        mod_e: mean |e_3| = 0.094609, the divisor undone on ``bases``.
        mod_lambda: mean |initial prior matrices|, the divisor undone on ``prior_matrix``.
        epoch: training epoch of the checkpoint.
    """

    mean: Tensor
    bases: Tensor
    prior_matrix: Tensor
    joint_weights: Tensor
    camera_multipliers: Tensor
    avg_cameras: Tensor
    cameras: Tensor
    component_scale: Tensor
    lambda_0: Tensor
    lambda_scale: Tensor
    exp_weights: Tensor
    exp_weights_model: Tensor
    exp_additive_model: Tensor
    hl_params: Tensor
    ir_reg: Tensor
    scale_regularizer: Tensor
    scaling_coefficient: Tensor
    mod_mu: float
    mod_e: float
    mod_lambda: float
    epoch: int

    @property
    def huber_delta(self) -> Tensor:
        """(M,) pseudo-Huber scale δ = 0.1 · hl_params, in normalised 2D units."""
        return 0.1 * self.hl_params

    @property
    def prior_weight(self) -> Tensor:
        """(M,) weight 0.75 · ir_reg of the prior rows."""
        return 0.75 * self.ir_reg

    @property
    def reprojection_weight(self) -> Tensor:
        """(M,) base weight s = component_scale · lambda_scale of the reprojection rows."""
        return self.component_scale * self.lambda_scale

    @property
    def prior_target(self) -> Tensor:
        """() target −0.003 · scale_regularizer of the prior row on the mean-pose scale."""
        return -0.003 * self.scale_regularizer


def _initial_prior_scale(sigma: np.ndarray) -> float:
    """mod_lambda: mean |diag(0, 1e-5, 1e-5, 1e-5, sigma[m, :25])| over all (M, 29, 29) entries."""
    m, n = sigma.shape[0], sigma.shape[1] - 1 + 4
    diag = np.concatenate([np.zeros((m, 1)), np.full((m, 3), 1e-5), sigma[:, :-1]], axis=1)
    return float(np.abs(diag).sum() / (m * n * n))


def load_authors_trained(
    root: str | Path | None = None, dtype: torch.dtype = torch.float64
) -> AuthorsTrainedParameters:
    """Load ``trained_model.h5`` and undo the authors' internal scalings.

    The divisors are recomputed from ``model_parameters.h5`` (``mu_3``, ``e_3``, ``sigma_3``) and
    the effective cameras need ``avg_cameras.h5``: all three files must be under ``root``.

    Raises:
        DatasetNotFoundError: If a file is missing.
    """
    trained = read_h5(ppca_file(root, "trained_model.h5"))
    ppca = read_h5(ppca_file(root, "model_parameters.h5"))
    avg = load_avg_cameras(root, dtype)
    mod_mu, mod_e = float(np.abs(ppca["mu_3"]).mean()), float(np.abs(ppca["e_3"]).mean())
    mod_lambda = _initial_prior_scale(ppca["sigma_3"])
    vec = {name: torch.as_tensor(trained[name], dtype=dtype).reshape(-1)
           for name in ("lambda_0", "lambda_scale", "exp_weights", "exp_weights_model",
                        "exp_additive_model", "hl_params", "ir_reg")}  # fmt: skip
    multipliers = torch.as_tensor(trained["cameras"], dtype=dtype)
    return AuthorsTrainedParameters(
        mean=joint_major(trained["mean_pose"] * mod_mu, dtype),
        bases=joint_major(trained["base_vectors"] * mod_e, dtype),
        prior_matrix=torch.as_tensor(trained["sigma_variance"] * mod_lambda, dtype=dtype),
        joint_weights=torch.as_tensor(trained["joint_weights"], dtype=dtype).reshape(-1, 17, 2),
        camera_multipliers=multipliers,
        avg_cameras=avg,
        cameras=multipliers * avg,
        component_scale=torch.as_tensor(ppca["sigma_3"][:, -1], dtype=dtype),
        scale_regularizer=torch.as_tensor(trained["scale_regularizer"], dtype=dtype),
        scaling_coefficient=torch.as_tensor(trained["scaling_coefficient"], dtype=dtype),
        mod_mu=mod_mu,
        mod_e=mod_e,
        mod_lambda=mod_lambda,
        epoch=int(trained["epoch"]),
        **vec,
    )


@torch.no_grad()
def load_authors_parameters(
    energy: MultiViewPoseEnergy, root: str | None = None, model: bool = True
) -> None:
    """Load the Wibergian-learning checkpoint into ``energy`` (3 components, 25 bases).

    What maps, and how (the authors' energy is orthographic with per-view normalised 2D and a
    free 3D pose tied to the PPCA by a model residual; ours is calibrated perspective):

    * μ: the trained mean poses, each rescaled to the norm of the untrained mean (the authors
      solve for a free scale coefficient a0 and normalise the output's limb norm, so the
      absolute size of their μ is arbitrary; component 0's grew about 15×);
    * e: the trained (non-orthonormal) bases, mm per unit coefficient, unchanged;
    * σ: the diagonal of the trained 29 × 29 prior matrix (basis rows), times
      √(λ₀ · 0.75 ir_reg / (10 · 0.75)), its strength relative to the initial λ₀ = 10,
      ir_reg = 1; the off-diagonal entries (≤ 2e-3) are dropped;
    * ω: the trained per-joint, per-axis weights averaged over the two axes and the three
      components, normalised to mean 1 over the 16 detected joints, shared by all cameras.

    Not mapped: the camera multipliers (we use calibrated cameras), the soft-min temperatures
    (we keep the lowest energy), ``lambda_scale``/``hl_params`` (their 2D units differ), and the
    ground-truth limb-length rescaling of their evaluation (never used here).

    With ``model=False`` only the joint weights ω are loaded (the PPCA stays as it is).
    """
    trained = load_authors_trained(root)
    weights = trained.joint_weights.mean(dim=(0, 2))
    mask = torch.ones(weights.shape[0], dtype=torch.bool)
    mask[UNDETECTED_JOINT] = False
    energy.log_weights.copy_((weights / weights[mask].mean()).log().expand_as(energy.log_weights))
    if not model:
        return
    ref = energy.mean.detach().double() * 1000.0
    scale = ref.flatten(1).norm(dim=1) / trained.mean.flatten(1).norm(dim=1)
    diag = torch.diagonal(trained.prior_matrix, dim1=1, dim2=2)[:, 4:].abs().clamp_min(1e-6)
    strength = torch.sqrt(trained.lambda_0 * trained.ir_reg / 10.0)[:, None]
    sigma = diag * strength
    energy.set_model(PPCAModel(trained.mean * scale[:, None, None], trained.bases, sigma,
                               trained.component_scale))
