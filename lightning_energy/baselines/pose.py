"""Multi-view pose baselines, and callbacks that install them into an energy before ``fit``.

* :func:`dlt_poses` — linear (DLT) triangulation of the detections (the 16 detected joints);
  :class:`~lightning_energy.tasks.MultiViewPoseTask` reports it beside every test.
* :class:`RefitPPCA` — the pose model re-fitted in closed form to the training poses
  (:func:`~lightning_energy.baselines.ppca.refit_ppca_model`).
* :class:`AuthorsParameters` — the Wibergian-learning authors' trained parameters
  (:func:`~lightning_energy.baselines.authors.load_authors_parameters`).

The untrained energy of Tome et al. and λ_prior = 0 need no code: they are the recipe's energy
tested without training (``lightning-energy cv --no-fit``, with ``prior_weight: 0`` for the
latter). The callbacks are :class:`~lightning_energy.callbacks.InitStep` s: a ``test`` of the
untrained recipe with one of them tests that baseline.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from lightning_energy.baselines.authors import load_authors_parameters
from lightning_energy.baselines.ppca import refit_ppca_model
from lightning_energy.callbacks.init_step import InitStep
from lightning_energy.datasets.pose_batch import UNDETECTED_JOINT, PoseBatch
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.energies.triangulation import triangulate_dlt


def detected_joints(num_joints: int = 17) -> Tensor:
    """(J,) bool: every joint but the undetected Neck/Nose (joint 9)."""
    mask = torch.ones(num_joints, dtype=torch.bool)
    mask[UNDETECTED_JOINT] = False
    return mask


def dlt_poses(batch: PoseBatch) -> Tensor:
    """(B, J, 3) DLT triangulation, mm (NaN where fewer than 2 views see the joint)."""
    b = batch.to(dtype=torch.float64)
    return triangulate_dlt(b.joints2d, b.visible, b.R, b.T, b.f, b.c, b.k, b.p)


def _pose_energy(pl_module: pl.LightningModule, who: str) -> MultiViewPoseEnergy:
    energy = getattr(pl_module, "energy", None)
    if not isinstance(energy, MultiViewPoseEnergy):
        raise TypeError(f"{who} needs a task whose energy is a MultiViewPoseEnergy, got "
                        f"{type(energy).__name__}.")
    return energy


class RefitPPCA(InitStep):
    """Re-fit the energy's PPCA model to the training poses, once before the first stage.

    The datamodule's training poses (``datamodule.poses("train")``, a
    :class:`~lightning_energy.datamodules.PoseDataModule`) are canonicalised and fitted in closed
    form with as many components and bases as the energy has (see
    :class:`~lightning_energy.callbacks.InitStep` for when it runs).

    Args:
        max_poses: Evenly spaced subsample cap of the closed-form fit.
    """

    def __init__(self, max_poses: int = 20000) -> None:
        if max_poses < 1:
            raise ValueError(f"Expected `max_poses` >= 1, got {max_poses}.")
        super().__init__()
        self.max_poses = max_poses

    def apply(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        energy = _pose_energy(pl_module, "RefitPPCA")
        datamodule: Any = getattr(trainer, "datamodule", None)
        if not callable(getattr(datamodule, "poses", None)):
            raise TypeError(f"RefitPPCA needs a datamodule with poses(split) (a PoseDataModule), "
                            f"got {type(datamodule).__name__}.")
        poses = datamodule.poses("train")
        model = refit_ppca_model(poses, energy.num_components, energy.num_bases, self.max_poses)
        energy.set_model(model)


class AuthorsParameters(InitStep):
    """Load the Wibergian-learning authors' trained parameters, once before the first stage.

    Args:
        root: Folder of ``trained_model.h5``, ``model_parameters.h5`` and ``avg_cameras.h5``.
        model: Load the trained pose model too; False loads the joint weights only.
    """

    def __init__(self, root: str = "../shared/data/wibergian_ppca", model: bool = True) -> None:
        super().__init__()
        self.root, self.model = root, model

    def apply(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        energy = _pose_energy(pl_module, "AuthorsParameters")
        load_authors_parameters(energy, self.root, model=self.model)
