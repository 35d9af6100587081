import pytest
import pytorch_lightning as pl
import torch

import lightning_energy as le
from lightning_energy.datamodules.tracking import TrackingDataModule
from lightning_energy.energies.tracking import TrackFusionEnergy, fusion_inputs
from lightning_energy.linalg import Banded
from lightning_energy.networks.tracker import (
    NUM_FEATURES,
    TemporalMixer,
    TrackerFeatureNet,
    tracker_features,
)
from lightning_energy.solvers.banded_irls import BandedIRLS
from lightning_energy.tasks.tracking import TrackerFusionTask, giou_loss


def _datamodule() -> TrackingDataModule:
    dm = TrackingDataModule(window=16, batch_size=6, synthetic_sequences=8, synthetic_length=64,
                            synthetic_trackers=4, fold=0, num_folds=4, val_fraction=0.2)
    dm.setup("fit")
    return dm


def _banded(damping: float = 1e-2) -> le.ImplicitAdjoint:
    return le.ImplicitAdjoint(damping, linear_solver=Banded())


def _task(adjoint: le.Adjoint | None = None) -> TrackerFusionTask:
    layer = le.EnergyLayer(TrackFusionEnergy(4), BandedIRLS(max_steps=50, tol=1e-6),
                           adjoint or _banded())
    return TrackerFusionTask(layer, TrackerFeatureNet(4), energy_lr=0.05, backbone_lr=0.01)


def test_features_shape_and_masking():
    batch = next(iter(_datamodule().train_dataloader()))
    batch.valid[0, 3, 1] = False
    inputs, _ = fusion_inputs(batch.boxes, batch.valid, batch.frame_valid)
    feats = tracker_features(inputs)
    assert feats.shape == (*batch.valid.shape, NUM_FEATURES)
    assert torch.equal(feats[0, 3, 1], torch.zeros(NUM_FEATURES))
    assert torch.isfinite(feats).all()


def test_giou_loss_is_zero_for_perfect_boxes_and_positive_otherwise():
    boxes = torch.tensor([[[0.0, 0, 10, 10], [5, 5, 4, 4]]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert giou_loss(boxes, boxes, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert giou_loss(boxes + 20, boxes, mask).item() > 1.0


def test_giou_loss_matches_hand_computed_values():
    pred = torch.tensor([[[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 1, 1]]], dtype=torch.float64)
    target = torch.tensor([[[5.0, 0, 10, 10], [20, 0, 10, 10], [50, 50, 9, 9]]],
                          dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])  # the third frame does not count
    # Frame 1: overlap 50, union 150, hull = union: IoU = GIoU = 1/3. Frame 2: no overlap,
    # union 200, hull 300: IoU 0, GIoU −1/3.
    assert giou_loss(pred, target, mask).item() == pytest.approx((2 / 3 + 4 / 3) / 2)


@pytest.mark.parametrize("adjoint", [_banded(), le.UnrolledAdjoint()])
def test_training_steps_reduce_the_loss(adjoint: le.Adjoint):
    dm = _datamodule()
    batch = next(iter(dm.train_dataloader()))
    task = _task(adjoint)
    optimizer = torch.optim.Adam(task.parameter_groups())
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = task.loss(task(batch), batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.97 * losses[0]
    assert task.backbone.mlp[-1].weight.grad is not None


def test_fit_and_test_log_otb_metrics(tmp_path):
    dm = _datamodule()
    trainer = pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, num_sanity_val_steps=0)
    task = _task()
    trainer.fit(task, datamodule=dm)
    (results,) = trainer.test(task, datamodule=dm, verbose=False)
    assert 0.0 < results["test/success_auc"] <= 20 / 21
    assert {"test/precision_20px", "test/mean_iou"} <= set(results)


def test_untrained_fusion_beats_mean_of_trackers():
    dm = _datamodule()
    task = _task()
    errors = {}
    for batch in dm.test_dataloader():
        with torch.no_grad():
            for name, err in task.baseline_errors(task(batch), batch).items():
                errors[name] = errors.get(name, 0.0) + float(err.sum())
    assert errors["energy"] < errors["mean of all trackers"]


def test_weighted_reference_follows_the_trusted_tracker():
    batch = next(iter(_datamodule().train_dataloader()))
    inputs, _ = fusion_inputs(batch.boxes, batch.valid, batch.frame_valid)
    trust = torch.tensor([1e6, 1.0, 1.0, 1.0])
    feats = tracker_features(inputs, trust=trust)
    assert feats.shape == (*batch.valid.shape, NUM_FEATURES)
    assert torch.isfinite(feats).all()
    # Tracker 0 carries (almost) all the weight, so it is the reference wherever it reports.
    assert torch.allclose(feats[..., 0, :3][batch.valid[..., 0]], torch.zeros(3), atol=1e-6)
    assert ((feats[..., 3:5] >= 0) & (feats[..., 3:5] <= 1)).all()
    with pytest.raises(ValueError, match="trust"):
        TrackerFeatureNet(4, weighted_reference=True)(inputs)


def test_temporal_mixer_has_the_stated_receptive_field():
    mixer = TemporalMixer(2, kernel=3, dilations=(1, 4))  # reach 1 + 4 = 5 frames each way
    hidden = torch.zeros(1, 30, 1, 2)
    bumped = hidden.clone()
    bumped[0, 15] = 1.0
    changed = (mixer(bumped) - mixer(hidden)).abs().sum((0, 2, 3)) > 0
    assert changed[[10, 15, 20]].all()  # reach ±5 (dilated: not every frame in between)
    assert not changed[:10].any()
    assert not changed[21:].any()
    with pytest.raises(ValueError, match="odd"):
        TemporalMixer(2, kernel=4)
    net = TrackerFeatureNet(3, temporal=3, dilations=(1, 4, 16))
    assert net.temporal is not None
    assert [conv.dilation[0] for conv in net.temporal.convs] == [1, 4, 16]
    with pytest.raises(ValueError, match="dilations"):
        TrackerFeatureNet(3, temporal=3, dilations=(0,))


def test_temporal_network_trains_through_the_argmin():
    batch = next(iter(_datamodule().train_dataloader()))
    layer = le.EnergyLayer(TrackFusionEnergy(4), BandedIRLS(max_steps=50, tol=1e-6),
                           _banded())
    net = TrackerFeatureNet(4, weighted_reference=True, temporal=3)
    task = TrackerFusionTask(layer, net, energy_lr=0.05, backbone_lr=0.01)
    task.loss(task(batch), batch).backward()
    assert net.mlp[-1].weight.grad is not None
    assert net.mlp[-1].weight.grad.abs().sum() > 0


def test_sequence_balanced_sampling_weighs_every_sequence_equally():
    dm = TrackingDataModule(window=16, batch_size=4, synthetic_sequences=4, synthetic_length=64,
                            synthetic_trackers=3, val_fraction=0.0, balanced=True)
    dm.setup("fit")
    dm.train_dataset.samples[0] = dm.train_dataset.samples[0].window(0, 20)  # a short one
    dm.train_dataset.index = [(i, s) for i, s in dm.train_dataset.index if i != 0] + [(0, 0)]
    weights = dm.train_dataset.sequence_balanced_weights()
    per_sequence: dict[int, float] = {}
    for (i, _), w in zip(dm.train_dataset.index, weights, strict=True):
        per_sequence[i] = per_sequence.get(i, 0.0) + w
    assert per_sequence == pytest.approx(dict.fromkeys(per_sequence, 1.0))
    assert next(iter(dm.train_dataloader())).boxes.shape == (4, 16, 3, 4)
