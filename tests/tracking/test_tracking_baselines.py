import numpy as np
import pytest
import torch

from lightning_energy.baselines import tracking as bl
from lightning_energy.data.otb import TrackerResults, TrackingSequences
from lightning_energy.data.tracking_synthetic import simulate_tracking


def _tiny() -> TrackingSequences:
    gt = np.array([[10.0, 10, 10, 10], [12, 10, 10, 10], [14, 10, 10, 10], [0, 0, 0, 0]])
    shift = np.array([[1.0, 0, 0, 0], [30, 0, 0, 0], [2, 0, 0, 0]])
    boxes = gt[:, None] + shift[None]
    boxes[1, 0] = np.nan  # tracker 0 lost on frame 1
    data = TrackingSequences(["a", "b", "c"])
    data.add(TrackerResults("s", boxes, gt))
    return data


def test_single_median_mean_and_oracle_on_a_hand_made_case():
    data = _tiny()
    item = data["s"]
    median = bl.coordinatewise("median")(item)
    # frame 1: only trackers 1 and 2 -> median of x = (12+30 + 12+2)/2 (lower median of 2 = 14)
    assert median[0, 0].item() == pytest.approx(12.0)
    assert median[1, 0].item() == pytest.approx(14.0)
    mean = bl.coordinatewise("mean")(item)
    assert mean[0, 0].item() == pytest.approx(10 + 11)
    oracle = bl.oracle(item)
    assert oracle[1, 0].item() == pytest.approx(14.0)  # tracker 2, since tracker 0 is lost
    assert oracle[0, 0].item() == pytest.approx(11.0)
    single = bl.sequence_scores(bl.single_tracker(0)(item), item)
    # frames 0, 2: IoU 9/11 each; frame 1 lost (IoU 0); frame 3 invalid ground truth
    iou = 90 / 110
    assert single["mean_iou"] == pytest.approx(2 * iou / 3)


def test_oracle_bounds_every_baseline_and_ranking():
    data = simulate_tracking(4, 80, 5, seed=1)
    aucs = bl.tracker_aucs(data)
    assert aucs.shape == (5,)
    oracle = bl.score_sequences(bl.oracle, data)["success_auc"]
    for fuser in (bl.coordinatewise("median"), bl.coordinatewise("mean", bl.top_k(aucs, 2)),
                  bl.robust_consensus()):
        assert bl.score_sequences(fuser, data)["success_auc"] <= oracle + 1e-12
    assert oracle >= aucs.max()
    assert bl.top_k(aucs, 2)[0] == int(np.argmax(aucs))


def test_bad_combination_rule_raises():
    with pytest.raises(ValueError, match="how"):
        bl.coordinatewise("mode")


def test_cv_harness_runs_on_tiny_synthetic_data(capsys: pytest.CaptureFixture[str]):
    from lightning_energy.experiments.tracking_cv import main

    table = main(["--folds", "2", "--only-folds", "0", "--steps", "2", "--window", "8",
                  "--batch-size", "4", "--synthetic-sequences", "4", "--synthetic-length", "30",
                  "--synthetic-trackers", "3", "--variants", "learned (implicit, λ=1e-2)"])
    for row in ("best single (chosen on train)", "median of top-5", "oracle", "grid search",
                "learned (implicit"):
        assert row in table
    assert torch.get_num_threads() >= 1
