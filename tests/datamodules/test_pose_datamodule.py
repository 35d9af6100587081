"""PoseBatch / PoseFrames / PoseDataModule on synthetic data, and the LOSO helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser
from pytorch_lightning.utilities import move_data_to_device
from torch.utils.data import DataLoader

from lightning_energy.datamodules.pose import PoseDataModule, loso_folds
from lightning_energy.datasets.pose_batch import PoseBatch, PoseFrames, collate_pose
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.errors import DatasetNotFoundError, ShapeError
from tests.datasets.test_pose_h36m import write_tiny_layout


def _check_batch(batch: PoseBatch, size: int) -> None:
    assert isinstance(batch, PoseBatch)
    assert batch.joints2d.shape == (size, 4, 17, 2)
    assert batch.visible.shape == (size, 4, 17)
    assert batch.visible.dtype == torch.bool
    assert batch.joints3d.shape == (size, 17, 3)
    assert batch.R.shape == (size, 4, 3, 3)
    assert batch.T.shape == (size, 4, 3)
    assert batch.k.shape == (size, 4, 3)
    assert batch.p.shape == batch.f.shape == batch.c.shape == (size, 4, 2)
    assert batch.frame.dtype == torch.long
    assert len(batch.subject) == len(batch.action) == len(batch.sequence) == size
    assert torch.isfinite(batch.joints2d).all()


def test_synthetic_datamodule_loaders_give_pose_batches() -> None:
    dm = PoseDataModule(batch_size=16, synthetic_frames=40, seed=3)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert [len(b) for b in batches] == [16, 16, 8]
    _check_batch(batches[0], 16)
    assert batches[0].joints2d.dtype == torch.float32
    val = next(iter(dm.val_dataloader()))
    _check_batch(val, 10)
    dm.setup("test")
    test = next(iter(dm.test_dataloader()))
    assert not torch.equal(test.joints3d, val.joints3d)  # different seeds per split


def test_train_loader_shuffles_and_val_does_not() -> None:
    dm = PoseDataModule(batch_size=64, synthetic_frames=256)
    dm.setup("fit")
    torch.manual_seed(0)
    train = next(iter(dm.train_dataloader()))
    assert not torch.equal(train.frame, torch.arange(64))
    dm.setup("validate")
    assert torch.equal(next(iter(dm.val_dataloader())).frame, torch.arange(64))


def test_loader_before_setup_raises() -> None:
    with pytest.raises(RuntimeError, match="setup"):
        PoseDataModule().train_dataloader()


def test_datamodule_signature_is_typed_for_lightning_cli() -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(PoseDataModule, "data")
    config = parser.parse_args(["--data.train_subjects=[S1,S5]", "--data.batch_size=8"])
    assert list(config.data.train_subjects) == ["S1", "S5"]
    assert config.data.test_subjects is None
    with pytest.raises(Exception, match="batch_size"):
        parser.parse_args(["--data.batch_size=many"])


def test_missing_root_fails_at_setup(tmp_path) -> None:
    dm = PoseDataModule(root=str(tmp_path / "absent"))
    with pytest.raises(DatasetNotFoundError, match="absent"):
        dm.setup("fit")


def test_loso_folds() -> None:
    folds = loso_folds(["S1", "S5", "S6", "S7", "S8"])
    assert len(folds) == 5
    assert folds[1] == (["S1", "S6", "S7", "S8"], ["S5"])
    assert all(set(train).isdisjoint(test) for train, test in folds)
    with pytest.raises(ValueError, match="distinct"):
        loso_folds(["S1"])


def test_frames_getitem_and_collate_match_batched_path() -> None:
    arrays = generate_synthetic_poses(12, seed=0, dropout_prob=0.2)
    frames = PoseFrames(arrays)
    one_by_one = collate_pose([frames[i] for i in (3, 7, 1)])
    batched = frames.__getitems__([3, 7, 1])[0]
    for name in ("joints2d", "visible", "joints3d", "R", "k", "frame"):
        assert torch.equal(getattr(one_by_one, name), getattr(batched, name))
    assert one_by_one.subject == batched.subject
    invisible = ~batched.visible
    assert torch.equal(invisible, torch.as_tensor(np.isnan(arrays.joints2d[[3, 7, 1], ..., 0])))
    assert (batched.joints2d[invisible] == 0).all()
    loader = DataLoader(frames, batch_size=5, collate_fn=collate_pose, num_workers=0)
    assert [len(b) for b in loader] == [5, 5, 2]


def test_pose_batch_to_and_lightning_transfer() -> None:
    batch = generate_synthetic_poses(4, seed=0).to_batch()
    double = batch.to(dtype=torch.float64)
    assert double.joints2d.dtype == double.R.dtype == torch.float64
    assert double.visible.dtype == torch.bool
    assert double.frame.dtype == torch.long
    moved = move_data_to_device(batch, torch.device("cpu"))
    assert isinstance(moved, PoseBatch)
    assert torch.equal(moved.joints3d, batch.joints3d)


def test_pose_batch_checks_shapes() -> None:
    batch = generate_synthetic_poses(2, seed=0).to_batch()
    with pytest.raises(ShapeError, match="Expected `joints3d` of shape"):
        PoseBatch(**{**batch.__dict__, "joints3d": batch.joints3d[:, :16]})
    with pytest.raises(ShapeError, match="subject"):
        PoseBatch(**{**batch.__dict__, "subject": ["a"]})


# Three subjects of two sequences each, in the staged Human3.6M layout.
SUBJECTS = [("S1", "Walking", "Walking", 3), ("S1", "Eating", "Eating", 2),
            ("S5", "Walking_1", "Walking", 2), ("S5", "Eating_2", "Eating", 3),
            ("S6", "Walking_2", "Walking", 2), ("S6", "Eating_1", "Eating", 2)]


@pytest.mark.parametrize("fold", ["S1", "S5", "S6"])
def test_fold_keeps_the_held_out_subject_out_of_training_and_validation(tmp_path, fold) -> None:
    """Faulty variant: the LOSO split trains (or validates) on the held-out subject too."""
    root = write_tiny_layout(tmp_path / "h36m", SUBJECTS)
    dm = PoseDataModule(root=str(root), fold=fold, subjects=["S1", "S5", "S6"], batch_size=2)
    dm.setup()
    seen = {split: {s for batch in dm.eval_dataloader(split) for s in batch.subject}
            for split in ("train", "val", "test")}
    assert seen["test"] == {fold}
    assert seen["train"] == {"S1", "S5", "S6"} - {fold}
    assert not seen["val"] & seen["test"]
    assert seen["val"] <= seen["train"]  # by design: validation is one training subject
    tested = {s for batch in dm.test_dataloader() for s in batch.subject}
    assert tested == {fold}
