import numpy as np
import pytest
import torch

from lightning_energy.baselines import tracking as bl
from lightning_energy.datasets.otb import TrackerResults, TrackingSequences
from lightning_energy.datasets.tracking_synthetic import simulate_tracking
from lightning_energy.errors import ShapeError
from lightning_energy.metrics.sequences import sequence_scores


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
    single = sequence_scores(bl.single_tracker(0)(item), bl.ground_truth(item))
    # frames 0, 2: IoU 9/11 each; frame 1 lost (IoU 0); frame 3 invalid ground truth
    iou = 90 / 110
    assert single["mean_iou"] == pytest.approx(2 * iou / 3)


def test_sequence_oracle_and_agreement_selection_on_a_hand_made_case():
    item = _tiny()["s"]
    # Tracker 0 (IoU 9/11 on frames 0 and 2, lost on 1) has AUC 17/21 · 2/3; tracker 2 (IoU 2/3 on
    # all three valid frames) 14/21, the best of the sequence.
    aucs = [sequence_scores(bl.single_tracker(k)(item), bl.ground_truth(item))["success_auc"]
            for k in range(3)]
    assert aucs[0] == pytest.approx(17 / 21 * 2 / 3)
    assert aucs[2] == pytest.approx(14 / 21)
    assert torch.equal(bl.sequence_oracle(item), bl.single_tracker(2)(item))
    # Trackers 0 and 2 agree (mean IoU 2·(9/11)/4 over the 4 frames), tracker 1 agrees with
    # nobody; the trust of the other tracker breaks the tie between 0 and 2.
    for trust, chosen in (([1.0, 1.0, 2.0], 2), ([2.0, 1.0, 1.0], 0)):
        picked = bl.agreement_selected(np.array(trust))(item)
        torch.testing.assert_close(picked, bl.single_tracker(chosen)(item), equal_nan=True)
    # Uniform trust: trackers 0 and 2 tie, and the first wins.
    torch.testing.assert_close(bl.agreement_selected()(item), bl.single_tracker(0)(item),
                               equal_nan=True)
    with pytest.raises(ValueError, match="trust"):
        bl.agreement_selected(np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ShapeError, match="trust"):
        bl.agreement_selected(np.ones(2))(item)


def test_oracle_bounds_every_baseline_and_ranking():
    data = simulate_tracking(4, 80, 5, seed=1)
    aucs = bl.tracker_aucs(data)
    assert aucs.shape == (5,)
    oracle = bl.score_sequences(bl.oracle, data)["success_auc"]
    for fuser in (bl.coordinatewise("median"), bl.coordinatewise("mean", bl.top_k(aucs, 2)),
                  bl.robust_consensus()):
        assert bl.score_sequences(fuser, data)["success_auc"] <= oracle + 1e-12
    assert oracle >= aucs.max()
    per_sequence = bl.score_sequences(bl.sequence_oracle, data)["success_auc"]
    agreement = bl.score_sequences(bl.agreement_selected(), data)["success_auc"]
    assert aucs.max() <= per_sequence + 1e-12
    assert agreement <= per_sequence + 1e-12
    assert bl.top_k(aucs, 2)[0] == int(np.argmax(aucs))


def test_bad_combination_rule_raises():
    with pytest.raises(ValueError, match="how"):
        bl.coordinatewise("mode")
