import numpy as np
import pytest
import torch

from lightning_energy.baselines import tracking as bl
from lightning_energy.datasets.otb import TrackerResults, TrackingSequences
from lightning_energy.errors import ShapeError
from lightning_energy.networks.tracker import NUM_FEATURES
from studies.tracking_selector import selector_inputs, train_selector

OFFSETS = np.array([[40.0, 0, 0, 0], [0, 40, 0, 0], [-40, -40, 0, 0]])
"""Where each of the three trackers goes while it is lost: far apart, so never agreeing."""


def _sequences(count: int, seed: int, right: int | None = None) -> TrackingSequences:
    """Three trackers, each lost on its own third of every sequence (which third varies).

    With ``right`` = k, the two other trackers are instead lost together, at the same place,
    from frame 30 on, and tracker k never is: the majority is then wrong two thirds of the time.
    """
    rng = np.random.default_rng(seed)
    data = TrackingSequences(["a", "b", "c"])
    for s in range(count):
        t = np.arange(90.0)
        gt = np.stack([100 + 0.5 * t, 100 + 0.2 * t, np.full(90, 20.0), np.full(90, 20.0)], -1)
        boxes = gt[:, None] + rng.normal(0, 0.5, (90, 3, 4))
        if right is not None:
            boxes[30:, [k for k in range(3) if k != right]] += OFFSETS[0]
        else:
            for third, k in enumerate(rng.permutation(3)):
                boxes[max(1, 30 * third):30 * (third + 1), k] += OFFSETS[k]
        data.add(TrackerResults(f"s{seed}_{s}", boxes, gt))
    return data


@pytest.mark.parametrize("right", [None, 0, 2])
def test_selector_learns_which_tracker_is_on_target(right: int | None):
    train, test = _sequences(6, seed=0, right=right), _sequences(3, seed=1, right=right)
    selected = bl.score_sequences(train_selector(train, steps=300, batch_size=512), test)
    singles = bl.tracker_aucs(test)
    oracle = bl.score_sequences(bl.oracle, test)["success_auc"]
    median = bl.score_sequences(bl.coordinatewise("median"), test)["success_auc"]
    if right is not None:
        # Agreement points at the lost pair; only the labels say which tracker is the one (two
        # cases, so that no untrained preference for one tracker can pass both).
        assert median < 0.5 * oracle
    else:
        # Each tracker is lost a third of the time; agreement tells, frame by frame, which.
        assert singles.max() < 0.7 * oracle
    assert selected["success_auc"] > oracle - 0.05


def test_selector_inputs_shapes_and_bad_arguments():
    item = _sequences(1, seed=2)["s2_0"]
    item.boxes[5, 1] = np.nan  # tracker 1 reports nothing on frame 5
    item.gt[7] = 0.0  # frame 7 has no valid ground truth
    x, iou, valid, labelled = selector_inputs(item, torch.tensor([1.0, 0.5, 0.2]))
    assert x.shape == (90, 3, NUM_FEATURES + 3)
    assert torch.equal(x[0, 1, NUM_FEATURES:], torch.tensor([0.0, 1.0, 0.0]))
    assert iou.shape == valid.shape == labelled.shape == (90, 3)
    assert valid.sum() == 90 * 3 - 1
    assert not valid[5, 1]
    assert labelled.sum() == 90 * 3 - 1 - 3
    assert not labelled[7].any()
    assert bool((iou[0] > 0.6).all())  # every tracker starts on the target
    # In each third exactly one tracker is lost (40 px off a 20 px box: IoU 0), on every frame.
    kept = [t for t in range(90) if t not in (5, 7)]  # the two frames changed above
    thirds = [iou[[t for t in kept if lo <= t < lo + 30]] for lo in (1, 30, 60)]
    assert all(bool(((t == 0).sum(-1) == 1).all()) for t in thirds)
    assert all(bool(((t > 0.6).sum(-1) == 2).all()) for t in thirds)
    with pytest.raises(ShapeError, match="trust"):
        selector_inputs(item, torch.ones(2))
    with pytest.raises(ValueError, match="odd smooth"):
        train_selector(_sequences(1, seed=3), smooth=4)
    fuser = train_selector(_sequences(1, seed=3), steps=1, batch_size=8)
    with pytest.raises(ShapeError, match="trained on 3 trackers"):
        fuser(TrackerResults("two", item.boxes[:, :2], item.gt))


def test_selector_is_seeded_and_leaves_the_global_random_state_alone():
    train, item = _sequences(2, seed=4), _sequences(1, seed=5)["s5_0"]
    torch.manual_seed(1)
    expected_next = torch.rand(3)
    torch.manual_seed(1)
    first = train_selector(train, steps=5, batch_size=64, seed=3)(item)
    assert torch.equal(torch.rand(3), expected_next)
    torch.manual_seed(2)  # another global state: the same selector
    assert torch.equal(train_selector(train, steps=5, batch_size=64, seed=3)(item), first)
