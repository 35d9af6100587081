from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from jsonargparse import ArgumentParser

from lightning_energy.datamodules.tracking import TrackingDataModule
from lightning_energy.datasets.otb import TrackingSequences, sequence_groups
from lightning_energy.datasets.tracking_batch import TrackingBatch
from lightning_energy.datasets.tracking_windows import TrackingWindows, window_starts
from lightning_energy.errors import DatasetNotFoundError
from tests.datasets.otb_fixture import write_otb_layout

TINY = Path(__file__).parents[1] / "fixtures" / "otb_tiny"


@pytest.mark.parametrize(
    ("length", "window", "stride", "expected"),
    [(10, 4, 2, [0, 2, 4, 6]), (10, 4, 3, [0, 3, 6]), (11, 4, 3, [0, 3, 6, 7]), (3, 4, 2, [0])],
)
def test_window_starts(length: int, window: int, stride: int, expected: list[int]):
    assert window_starts(length, window, stride) == expected


def test_windows_cover_every_frame():
    data = TrackingSequences.from_root(TINY)
    dataset = TrackingWindows(data, window=4, stride=3)
    covered = {(s.sequence, s.start + t) for s in dataset for t in range(s.boxes.shape[0])}
    assert covered == {(item.sequence, t) for item in data for t in range(item.num_frames)}
    assert all(s.boxes.shape[0] == 4 for s in dataset)  # every tiny sequence has >= 4 frames
    whole = TrackingWindows(data)
    assert [s.boxes.shape[0] for s in whole] == [6, 5, 7]


def test_synthetic_loaders_shapes_and_splits():
    dm = TrackingDataModule(
        window=16,
        batch_size=3,
        fold=1,
        num_folds=4,
        val_fraction=0.25,
        synthetic_sequences=12,
        synthetic_length=40,
        synthetic_trackers=5,
    )
    assert dm.num_trackers == 5  # known before setup
    assert dm.tracker_names == [f"sim{k:02d}" for k in range(5)]
    dm.setup("fit")
    train, val, test = dm.splits["train"], dm.splits["val"], dm.splits["test"]
    assert (len(train), len(val), len(test)) == (7, 2, 3)
    assert not (set(train) & set(val)) | (set(train) & set(test)) | (set(val) & set(test))
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, TrackingBatch)
    assert batch.boxes.shape == (3, 16, 5, 4)
    assert batch.frame_valid.all()
    assert set(batch.sequence) <= set(train)
    assert len(dm.train_dataloader().dataset) == 7 * 4  # starts 0, 8, 16, 24 per sequence
    for loader, names in ((dm.val_dataloader(), val), (dm.test_dataloader(), test)):
        batches = list(loader)
        assert [b.sequence[0] for b in batches] == names
        assert all(b.boxes.shape == (1, 40, 5, 4) and b.start.item() == 0 for b in batches)
    assert [b.sequence[0] for b in dm.predict_dataloader()] == test


def test_otb_fixture_with_explicit_test_sequences_and_tracker_order():
    dm = TrackingDataModule(
        root=str(TINY),
        trackers=["TrC", "TrA"],
        window=4,
        batch_size=2,
        val_fraction=0.3,
        test_sequences=["SeqC"],
    )
    assert dm.num_trackers == 2
    dm.setup()
    assert dm.splits["test"] == ["SeqC"]
    assert sorted(dm.splits["train"] + dm.splits["val"]) == ["SeqA", "SeqB-1", "SeqB-2"]
    groups = {sequence_groups(TINY)[n] for n in dm.splits["val"]}
    assert not groups & {sequence_groups(TINY)[n] for n in dm.splits["train"]}
    (batch,) = list(dm.test_dataloader())
    assert batch.boxes.shape == (1, 5, 2, 4)
    seq_a = next(b for b in TrackingWindows(dm.data.subset(["SeqA"])))
    assert not seq_a.valid[3, 0]  # TrC reported nan on frame 4
    assert seq_a.valid[3, 1]
    for train_batch in dm.train_dataloader():
        assert train_batch.boxes.shape[1:] == (4, 2, 4)


def test_otb_fixture_folds_keep_videos_together():
    tests = []
    for fold in range(2):
        dm = TrackingDataModule(root=str(TINY), fold=fold, num_folds=2, val_fraction=0.0)
        dm.setup("test")
        tests.append(dm.splits["test"])
        assert dm.num_trackers == 3
        assert dm.tracker_names == ["TrB", "TrA", "TrC"]
    assert sorted(tests[0] + tests[1]) == ["SeqA", "SeqB-1", "SeqB-2"]
    assert {"SeqB-1", "SeqB-2"} in ({*tests[0]}, {*tests[1]})


def test_default_test_set_is_the_whole_split():
    dm = TrackingDataModule(root=str(TINY), val_fraction=0.0)
    dm.setup("test")
    assert dm.splits["test"] == ["SeqA", "SeqB-1", "SeqB-2"]
    batches = list(dm.test_dataloader())
    assert [b.boxes.shape[1] for b in batches] == [6, 5, 7]
    assert not batches[1].target_valid[0, 4]  # 0,0,0,0 ground-truth row


def test_missing_root_raises_at_setup_with_a_clear_message(tmp_path: Path):
    root = tmp_path / "missing"
    dm = TrackingDataModule(root=str(root))
    assert dm.num_trackers is None
    with pytest.raises(DatasetNotFoundError, match=r"expected groundtruth/<seq>\.txt"):
        dm.prepare_data()
    with pytest.raises(DatasetNotFoundError, match="set `root`") as info:
        dm.setup("fit")
    assert str(root) in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="SeqZ"):
        TrackingDataModule(root=str(TINY), test_sequences=["SeqZ"]).setup()


def test_count_trackers_and_argument_errors():
    assert TrackingDataModule.count_trackers(str(TINY), None) == 3
    assert TrackingDataModule.count_trackers(str(TINY), ["TrA"]) == 1
    assert TrackingDataModule.count_trackers(None, None, synthetic_trackers=6) == 6
    with pytest.raises(DatasetNotFoundError):
        TrackingDataModule.count_trackers("/nonexistent/otb", None)
    with pytest.raises(ValueError, match="either `fold` or `test_sequences`"):
        TrackingDataModule(fold=0, test_sequences=["a"])
    with pytest.raises(ValueError, match="window"):
        TrackingDataModule(window=0)
    with pytest.raises(ValueError, match="fold"):
        TrackingDataModule(fold=5, num_folds=5)


def test_arguments_are_checkable_by_jsonargparse():
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(TrackingDataModule, "data")
    cfg = parser.parse_args(["--data.root=x", "--data.trackers=[TrA, TrB]", "--data.fold=2"])
    assert cfg.data.trackers == ["TrA", "TrB"]
    assert cfg.data.fold == 2
    assert cfg.data.stride is None
    with pytest.raises(Exception, match="window"):
        parser.parse_args(["--data.window=many"])


class _Probe(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[str, tuple[int, ...]]] = []

    def _step(self, batch: TrackingBatch, stage: str) -> torch.Tensor:
        self.seen.append((stage, tuple(batch.boxes.shape)))
        mask = batch.valid & batch.target_valid[..., None]
        error = (batch.boxes - batch.target[:, :, None]).abs().sum(-1)
        loss = (error * mask).sum() / mask.sum().clamp(min=1) * (1 + self.weight)
        self.log(f"{stage}/loss", loss, batch_size=batch.batch_size)
        return loss

    def training_step(self, batch: TrackingBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: TrackingBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: TrackingBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_trainer_runs_on_the_datamodule():
    dm = TrackingDataModule(
        window=8, batch_size=2, synthetic_sequences=4, synthetic_length=20, synthetic_trackers=3
    )
    probe = _Probe()
    trainer = pl.Trainer(
        accelerator="cpu",
        fast_dev_run=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(probe, datamodule=dm)
    trainer.test(probe, datamodule=dm)
    assert ("train", (2, 8, 3, 4)) in probe.seen
    assert ("val", (1, 20, 3, 4)) in probe.seen
    assert ("test", (1, 20, 3, 4)) in probe.seen


@pytest.mark.parametrize("seed", [0, 1])
def test_no_video_on_two_sides_of_any_fold(tmp_path: Path, seed: int):
    """Faulty variant: `_split_names` calls kfold_sequences or train_val_split without groups."""
    root = write_otb_layout(tmp_path / "otb")
    video = sequence_groups(root)
    tested = []
    for fold in range(3):
        dm = TrackingDataModule(root=str(root), fold=fold, num_folds=3, val_fraction=0.3,
                                seed=seed, window=4)
        dm.setup()
        sides = {split: {video[name] for name in dm.splits[split]}
                 for split in ("train", "val", "test")}
        assert sides["val"]  # the carve-out happened, so its check below is not vacuous
        assert not sides["train"] & sides["val"]
        assert not sides["train"] & sides["test"]
        assert not sides["val"] & sides["test"]
        # The loaders serve exactly those splits' sequences.
        for split, dataset in (("train", dm.train_dataset), ("val", dm.val_dataset),
                               ("test", dm.test_dataset)):
            assert {sample.sequence for sample in dataset} == set(dm.splits[split])
        tested += dm.splits["test"]
    assert sorted(tested) == sorted(video)  # the test folds partition the sequences
