"""Pose baselines on tiny synthetic data: DLT, re-fitted PPCA, grid search, per-frame errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_energy.baselines.pose import (
    detected_joints,
    dlt_poses,
    evaluate_poses,
    frame_errors,
    grid_search,
    load_authors_parameters,
    mpjpe_without_offset,
    per_joint_error,
    per_joint_offset,
    refit_ppca_model,
)
from lightning_energy.data.pose_synthetic import generate_synthetic_poses, tiny_pose_model
from lightning_energy.energies.pose import MultiViewPoseEnergy
from lightning_energy.experiments.pose_cv import markdown
from lightning_energy.metrics.functional import mpjpe, pa_mpjpe

PPCA_ROOT = Path("../shared/data/wibergian_ppca")


def test_dlt_is_exact_on_clean_detections() -> None:
    arrays = generate_synthetic_poses(6, seed=0, noise_px=0.0, swap_prob=0.0, dropout_prob=0.0)
    errors = evaluate_poses(dlt_poses, arrays, batch_size=4, joint_mask=detected_joints())
    assert errors.mpjpe.shape == (6,)
    assert errors.mpjpe.max() < 0.5


def test_frame_errors_agree_with_the_metrics() -> None:
    target = torch.randn(5, 17, 3, dtype=torch.float64) * 300
    pred = target + 20 * torch.randn(5, 17, 3, dtype=torch.float64)
    mask = detected_joints()
    root, pa = frame_errors(pred, target, mask)
    torch.testing.assert_close(root.mean(), mpjpe(pred, target, joint_mask=mask))
    torch.testing.assert_close(pa.mean(), pa_mpjpe(pred, target, joint_mask=mask))


def test_refit_ppca_recovers_the_generating_subspace() -> None:
    model = tiny_pose_model(num_bases=4)
    arrays = generate_synthetic_poses(400, model, seed=1)
    fitted = refit_ppca_model(arrays, num_components=1, num_bases=4)
    true = model.bases[0].reshape(4, -1)
    est = fitted.bases[0].reshape(4, -1).double()
    overlap = torch.linalg.svdvals(true @ est.T)  # cosines of the principal angles
    assert overlap[:3].min() > 0.99  # the re-canonicalisation blurs the weakest basis a little
    assert overlap.min() > 0.9


def test_grid_search_returns_the_best_grid_point() -> None:
    arrays = generate_synthetic_poses(4, seed=2)
    scores_seen = []

    def make(lam: float, delta: float):
        def predict(batch):
            scores_seen.append((lam, delta))
            return batch.joints3d + 10 * lam + delta  # error grows with both: best is the min
        return predict

    best, scores = grid_search(make, arrays, prior_weights=(0.1, 1.0), kernel_scales=(1.0, 3.0))
    assert best == (0.1, 1.0)
    assert len(scores) == 4
    assert len(set(scores_seen)) == 4


def test_by_action_groups_frames() -> None:
    arrays = generate_synthetic_poses(4, seed=0)
    arrays.action = np.array(["A", "B", "A", "B"])
    errors = evaluate_poses(dlt_poses, arrays, joint_mask=detected_joints())
    table = errors.by_action()
    assert set(table) == {"A", "B"}
    assert table["A"][0] == pytest.approx(errors.mpjpe[[0, 2]].mean())


def test_per_joint_error_finds_the_displaced_joint() -> None:
    arrays = generate_synthetic_poses(5, seed=1)
    shift = torch.zeros(17, 3, dtype=torch.float64)
    shift[3] = torch.tensor([30.0, 0.0, 40.0])  # 50 mm off at the right foot, nowhere else

    def predict(batch):
        return batch.joints3d.double() + shift

    error = per_joint_error(predict, arrays, batch_size=2)
    expected = np.zeros(17)
    expected[3] = 50.0
    np.testing.assert_allclose(error, expected, atol=1e-4)


def test_per_joint_offset_is_signed_and_in_the_body_frame() -> None:
    arrays = generate_synthetic_poses(6, seed=4)
    up = torch.zeros(17, 3, dtype=torch.float64)
    up[10, 2] = 25.0  # the head 25 mm too high, whichever way the subject faces

    def predict(batch):
        pose = batch.joints3d.double() + up
        right = pose[:, 1] - pose[:, 4]  # RHip - LHip, the body's x axis
        right[:, 2] = 0.0
        # the right wrist 10 mm further to the subject's right, the left one 15 mm forward
        right = torch.nn.functional.normalize(right, dim=-1)
        up_axis = right.new_tensor([0.0, 0.0, 1.0]).expand_as(right)
        pose[:, 16] += 10.0 * right
        pose[:, 13] += 15.0 * torch.linalg.cross(up_axis, right)
        return pose

    offset = per_joint_offset(predict, arrays, batch_size=4)
    expected = np.zeros((17, 3))
    expected[10] = [0.0, 0.0, 25.0]
    expected[16] = [10.0, 0.0, 0.0]
    expected[13] = [0.0, 15.0, 0.0]
    np.testing.assert_allclose(offset, expected, atol=1e-6)
    assert mpjpe_without_offset(predict, arrays, offset, batch_size=4) == pytest.approx(0.0,
                                                                                    abs=1e-6)
    forward = arrays.joints3d[:, 1] - arrays.joints3d[:, 4]
    assert np.ptp(np.arctan2(forward[:, 1], forward[:, 0])) > 0.5  # several facing directions


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


def test_markdown_table_lists_methods() -> None:
    fold = {"methods": {"m": {"mpjpe": 40.0, "pa_mpjpe": 30.0, "mpjpe16": 39.0},
                        "e": {"mpjpe": 40.0, "pa_mpjpe": 30.0, "mpjpe16": 39.0,
                              "converged": 0.97}}}
    text = markdown({"S1": fold, "S5": fold})
    assert "| m | 40.0 ± 0.0 | 30.0 ± 0.0 | 39.0 ± 0.0 | 0 | – | 2 |" in text
    assert "| e | 40.0 ± 0.0 | 30.0 ± 0.0 | 39.0 ± 0.0 | 0 | 97.0% | 2 |" in text


def test_pose_cv_refuses_a_run_that_would_train_nothing(capsys):
    from lightning_energy.experiments.pose_cv import parse

    with pytest.raises(SystemExit):
        parse(["--skip-implicit"])
    assert "--skip-implicit" in capsys.readouterr().err
    assert parse(["--skip-implicit", "--unrolled"]).unrolled


def test_pose_cv_temperature_options(capsys):
    from lightning_energy.experiments.pose_cv import parse

    assert parse(["--component-temperature", "auto"]).component_temperature == "auto"
    assert parse(["--component-temperature", "2.5"]).component_temperature == 2.5
    for bad in (["--component-temperature", "0"], ["--train-temperature", "-1"]):
        with pytest.raises(SystemExit):
            parse(bad)
    assert "temperature" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--chunk-size", "0"])
    assert "--chunk-size must be >= 1, got 0" in capsys.readouterr().err


def test_choose_temperature_scores_every_candidate_on_the_given_frames():
    from lightning_energy.experiments.pose_cv import TEMPERATURES, choose_temperature, parse
    from lightning_energy.metrics.functional import mpjpe
    from lightning_energy.tasks.pose import MultiViewPoseTask

    energy = MultiViewPoseEnergy(None, num_components=3, num_bases=4).double()
    with torch.no_grad():
        energy.mean.add_(0.03 * torch.randn(energy.mean.shape, dtype=torch.float64,
                                            generator=torch.Generator().manual_seed(1)))
    task = MultiViewPoseTask(energy)
    arrays = generate_synthetic_poses(12, seed=2, noise_px=6.0)
    choice, scores = choose_temperature(task, arrays, parse(["--eval-batch-size", "5"]))
    assert set(scores) == {"argmin", *map(str, TEMPERATURES)}
    assert scores["argmin" if choice is None else str(choice)] == min(scores.values())
    with torch.no_grad():
        hard = task(arrays.to_batch(dtype=torch.float64))
    assert abs(scores["argmin"] - float(mpjpe(hard.x, arrays.to_batch().joints3d.double()))) < 1e-4
    assert len(set(scores.values())) > 1  # the temperatures do change the prediction
