"""Pose baselines: DLT, the re-fitted PPCA and the authors' parameters, and their callbacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lightning_energy.baselines.authors import load_authors_parameters
from lightning_energy.baselines.pose import (
    AuthorsParameters,
    RefitPPCA,
    detected_joints,
    dlt_poses,
)
from lightning_energy.baselines.ppca import refit_ppca_model
from lightning_energy.datamodules import PoseDataModule
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.energies.ppca import tiny_pose_model
from lightning_energy.metrics.functional import mpjpe
from lightning_energy.solvers import LevenbergMarquardt
from lightning_energy.tasks import MultiViewPoseTask

PPCA_ROOT = Path("../shared/data/wibergian_ppca")


def test_dlt_is_exact_on_clean_detections() -> None:
    arrays = generate_synthetic_poses(6, seed=0, noise_px=0.0, swap_prob=0.0, dropout_prob=0.0)
    batch = arrays.to_batch()
    error = mpjpe(dlt_poses(batch), batch.joints3d.double(), joint_mask=detected_joints())
    assert float(error) < 0.5


def test_refit_ppca_recovers_the_generating_subspace() -> None:
    model = tiny_pose_model(num_bases=4)
    arrays = generate_synthetic_poses(400, model, seed=1)
    fitted = refit_ppca_model(torch.as_tensor(arrays.joints3d), num_components=1, num_bases=4)
    true = model.bases[0].reshape(4, -1)
    est = fitted.bases[0].reshape(4, -1).double()
    overlap = torch.linalg.svdvals(true @ est.T)  # cosines of the principal angles
    assert overlap[:3].min() > 0.99  # the re-canonicalisation blurs the weakest basis a little
    assert overlap.min() > 0.9


def _tiny_task() -> MultiViewPoseTask:
    energy = MultiViewPoseEnergy(None, num_components=1, num_bases=4).double()
    return MultiViewPoseTask(energy, LevenbergMarquardt(max_steps=10, tol=1e-3, dtype="float64"))


def _trainer(callback: pl.Callback) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      limit_test_batches=1, callbacks=[callback])


def test_refit_ppca_callback_fits_the_training_poses_before_an_untrained_test() -> None:
    task = _tiny_task()
    before = task.pose_energy.bases.detach().clone()
    datamodule = PoseDataModule(batch_size=8, synthetic_frames=64)
    _trainer(RefitPPCA()).test(task, datamodule=datamodule, verbose=False)
    expected = refit_ppca_model(datamodule.poses("train"), 1, 4)
    torch.testing.assert_close(task.pose_energy.bases.detach(), expected.bases[:, :4])
    assert not torch.allclose(before, task.pose_energy.bases.detach())


def test_an_init_step_never_overwrites_weights_it_did_not_set() -> None:
    task = _tiny_task()
    trainer = _trainer(RefitPPCA())
    datamodule = PoseDataModule(batch_size=8, synthetic_frames=64)
    trainer.test(task, datamodule=datamodule, verbose=False)
    with torch.no_grad():
        task.pose_energy.bases.add_(1.0)  # as if trained since
    changed = task.pose_energy.bases.detach().clone()
    trainer.test(task, datamodule=datamodule, verbose=False)  # a later stage: not again
    torch.testing.assert_close(task.pose_energy.bases.detach(), changed)


@pytest.mark.skipif(not PPCA_ROOT.is_dir(), reason="authors' PPCA files not staged")
def test_authors_parameters_load_into_the_energy() -> None:
    energy = MultiViewPoseEnergy(str(PPCA_ROOT), num_components=3)
    before = energy.mean.detach().clone()
    load_authors_parameters(energy, str(PPCA_ROOT))
    assert not torch.equal(before, energy.mean.detach())
    norms = energy.mean.detach().flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, before.flatten(1).norm(dim=1))  # rescaled to the same size
    assert energy.log_weights[:, 9].abs().max() > 0  # weights loaded (joint 9 kept finite)
    assert torch.isfinite(energy.log_std).all()


def test_authors_parameters_callback_needs_a_pose_energy() -> None:
    from lightning_energy.tasks import RobustMeanTask

    with pytest.raises(TypeError, match="MultiViewPoseEnergy"):
        AuthorsParameters(str(PPCA_ROOT)).apply(pl.Trainer(logger=False), RobustMeanTask())
