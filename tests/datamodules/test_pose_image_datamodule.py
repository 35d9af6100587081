"""PoseImageDataModule: synthetic poses rendered in seconds, real poses, argument checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from jsonargparse import ArgumentParser

from lightning_energy.datamodules import PoseImageDataModule
from lightning_energy.datasets.pose_images import PoseImageBatch
from lightning_energy.errors import DatasetNotFoundError


@pytest.fixture(autouse=True)
def _one_thread():
    """Rendering is many small tensor ops: on a busy machine extra threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _images_by_frame(loader) -> dict[int, torch.Tensor]:
    return {int(f): b.images[i] for b in loader for i, f in enumerate(b.frame)}


def test_synthetic_datamodule_renders_batches_fixed_for_val_augmented_for_train():
    """Faulty variants: validation images that change per epoch; training images that repeat."""
    dm = PoseImageDataModule(root=None, synthetic_frames=8, batch_size=4, image_size=32)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, PoseImageBatch)
    assert batch.images.shape == (4, 4, 3, 32, 32)
    assert batch.joints3d.shape == (4, 17, 3)
    first, second = _images_by_frame(dm.train_dataloader()), _images_by_frame(dm.train_dataloader())
    assert sorted(first) == list(range(8))
    assert all(not torch.equal(first[f], second[f]) for f in first)
    val = [next(iter(dm.val_dataloader())) for _ in range(2)]
    assert len(val[0]) == 2
    assert torch.equal(val[0].images, val[1].images)
    dm.setup("test")
    test = next(iter(dm.test_dataloader()))
    assert not torch.equal(test.joints3d, val[0].joints3d)  # each split its own seed
    assert dm.poses("train").shape == (8, 17, 3)


def test_worker_processes_render_and_seeds_repeat(tmp_path):
    """Faulty variants: a dataset that cannot be pickled into workers; an unused cache folder."""
    dm = PoseImageDataModule(root=None, synthetic_frames=4, batch_size=1, image_size=16,
                             num_workers=1, cache_dir=str(tmp_path))
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch.images.shape == (1, 4, 3, 16, 16)
    assert len(list(tmp_path.glob("*.npz"))) == 4
    again = PoseImageDataModule(root=None, synthetic_frames=4, batch_size=1, image_size=16)
    again.setup("validate")
    assert torch.equal(next(iter(again.val_dataloader())).images, batch.images)


def test_arguments_parse_for_lightning_cli_and_bad_ones_fail():
    """Faulty variants: an untyped `render` jsonargparse cannot fill; image_size ignored."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(PoseImageDataModule, "data")
    config = parser.parse_args(["--data.root=null", "--data.render.distractors=1",
                                "--data.image_size=48"])  # fmt: skip
    dm = PoseImageDataModule(**{**vars(config.data), "render": None})
    assert dm.config.image_size == 48
    assert config.data.render.distractors == 1
    assert config.data.test_subjects is None
    with pytest.raises(ValueError, match="root"):
        PoseImageDataModule(root=None, images_root="frames")
    with pytest.raises(ValueError, match="batch_size"):
        PoseImageDataModule(batch_size=0)
    with pytest.raises(RuntimeError, match="setup"):
        PoseImageDataModule(root=None).train_dataloader()


def test_missing_root_fails_at_setup(tmp_path):
    """Faulty variant: a missing dataset that surfaces as a bare error deep in a loader."""
    dm = PoseImageDataModule(root=str(tmp_path / "absent"))
    with pytest.raises(DatasetNotFoundError, match="absent"):
        dm.setup("fit")


@pytest.mark.skipif(not Path("../shared/data/h36m_multiview_sh/sequences.csv").is_file(),
                    reason="Human3.6M development data not staged at "
                           "../shared/data/h36m_multiview_sh (relative to the repository root)")
def test_real_poses_through_the_default_root():
    """Faulty variants: test split not defaulting to the validation subject; stride ignored."""
    dm = PoseImageDataModule(actions=["Walking"], max_frames_per_subject=2, batch_size=2)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert set(batch.subject) == {"S8"}
    assert batch.images.shape == (2, 4, 3, 64, 64)
    assert batch.visible.all()
    assert dm.strides == {"train": 5, "val": 5, "test": 5}
