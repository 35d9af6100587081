"""Image batches: rendered frames (fixed, augmented, cached), real frames read from a folder."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lightning_energy.datasets import pose_images
from lightning_energy.datasets.h36m import load_h36m
from lightning_energy.datasets.pose_batch import CAMERA_IDS, CameraArrays
from lightning_energy.datasets.pose_image_folder import ImageFolderFrames, read_frame
from lightning_energy.datasets.pose_images import (
    PoseImageBatch,
    RenderedPoseFrames,
    collate_pose_images,
)
from lightning_energy.datasets.pose_render import (
    RenderConfig,
    image_to_crop,
    render_view,
    view_seed,
)
from lightning_energy.datasets.pose_synthetic import H36M_S1_CAMERAS, generate_synthetic_poses
from lightning_energy.energies.cameras import project_perspective
from lightning_energy.errors import DatasetNotFoundError

REAL_ROOT = Path("../shared/data/h36m_multiview_sh")  # relative to the repository root
SMALL = RenderConfig(image_size=32)
WIDTH, HEIGHT = 250, 270  # not square: a swapped width/height shows


@pytest.fixture(autouse=True)
def _one_thread():
    """Rendering is many small tensor ops: on a busy machine extra threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _frames(n: int = 3, **kwargs: object) -> RenderedPoseFrames:
    return RenderedPoseFrames(generate_synthetic_poses(n, seed=1), SMALL, **kwargs)  # type: ignore[arg-type]


def _projection(batch: PoseImageBatch) -> torch.Tensor:
    return project_perspective(batch.joints3d.double(), batch.R.double(), batch.T.double(),
                               batch.f.double(), batch.c.double(), batch.k.double(),
                               batch.p.double())  # fmt: skip


def test_loader_collates_image_batches_with_ground_truth_keypoints():
    """Faulty variants: joints2d left as noisy detections; views or frames mixed up in collate."""
    frames = _frames(3)
    batches = list(DataLoader(frames, batch_size=2, collate_fn=collate_pose_images))
    assert [len(b) for b in batches] == [2, 1]
    batch = batches[0]
    assert isinstance(batch, PoseImageBatch)
    assert batch.images.shape == (2, 4, 3, 32, 32)
    assert batch.images.dtype == torch.float32
    assert batch.crop.shape == (2, 4, 3)
    assert batch.occluded.shape == (2, 4, 17)
    assert batch.visible.all()
    torch.testing.assert_close(batch.joints2d.double(), _projection(batch), atol=1e-3, rtol=0)
    single = frames[1]
    torch.testing.assert_close(single.images[0], batch.images[1])
    whole = PoseImageBatch.cat(batches)
    assert len(whole) == 3
    assert torch.equal(whole.frame, torch.arange(3))
    moved = whole.to(dtype=torch.float64)
    assert moved.images.dtype == torch.float64
    assert moved.occluded.dtype == torch.bool


def test_fixed_views_use_view_seed_and_augmented_ones_change():
    """Faulty variants: validation images that change between epochs; augmentation that repeats."""
    fixed = _frames(2)
    arrays = fixed.arrays
    cams = pose_images.camera_of(arrays, 1, 2)
    seed = view_seed(arrays.subject[1], arrays.sequence[1], int(arrays.frame[1]), CAMERA_IDS[2], 0)
    expected = render_view(arrays.joints3d[1], **cams, config=SMALL, seed=seed)
    assert torch.equal(fixed[1].images[0, 2], expected.image)
    assert torch.equal(fixed[1].images, fixed[1].images)
    augmented = _frames(2, augment=True)
    assert not torch.equal(augmented[1].images, augmented[1].images)
    assert not torch.equal(augmented[1].crop, augmented[1].crop)


def test_cache_stores_one_file_per_view_and_is_read_back(tmp_path, monkeypatch):
    """Faulty variants: a cache key missing the pose (other poses' images returned); no reuse."""
    first = _frames(2, cache_dir=tmp_path)[0]
    assert len(list(tmp_path.glob("*.npz"))) == 4

    def fail(*args, **kwargs):
        raise AssertionError("rendered although cached")

    monkeypatch.setattr(pose_images, "render_view", fail)
    again = _frames(2, cache_dir=tmp_path)[0]
    assert torch.equal(first.images, again.images)
    assert torch.equal(first.occluded, again.occluded)
    monkeypatch.undo()
    other_poses = RenderedPoseFrames(generate_synthetic_poses(2, seed=2), SMALL,
                                     cache_dir=tmp_path)[0]  # same labels, other joints
    assert len(list(tmp_path.glob("*.npz"))) == 8
    assert not torch.equal(first.images, other_poses.images)


def _small_rig() -> CameraArrays:
    """The S1 cameras at a quarter of their resolution (frames about 250 × 250)."""
    cams = H36M_S1_CAMERAS
    return CameraArrays(cams.R, cams.T, cams.f / 4, cams.c / 4, cams.k, cams.p)


def _write_frames(root: Path, frames: RenderedPoseFrames, suffixes: list[str]) -> None:
    """Paste each rendered crop, resampled, into a WIDTH × HEIGHT frame file."""
    from PIL import Image

    a = frames.arrays
    for index in range(len(a)):
        for camera, suffix in enumerate(suffixes):
            view = frames.view(index, camera)
            u = torch.arange(WIDTH, dtype=torch.float64) + 0.5
            v = torch.arange(HEIGHT, dtype=torch.float64) + 0.5
            grid = torch.stack(torch.meshgrid(u, v, indexing="xy"), -1).view(-1, 2)
            uv = image_to_crop(grid, view.crop) / 32 * 2 - 1  # crop → [-1, 1]
            full = F.grid_sample(view.image[None], uv.view(1, HEIGHT, WIDTH, 2).float(),
                                 mode="bilinear", padding_mode="border", align_corners=False)
            pixels = (full[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            folder = root / a.subject[index] / a.sequence[index] / CAMERA_IDS[camera]
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{int(a.frame[index]):06d}" if camera % 2 else str(int(a.frame[index]))
            if suffix == ".npy":
                np.save(folder / f"{name}.npy", pixels)
            else:
                Image.fromarray(pixels).save(folder / f"{name}{suffix}", quality=95)


def test_image_folder_reader_crops_real_frames_like_the_renderer(tmp_path):
    """Faulty variants: a crop read at the wrong place or scale; a half-pixel grid shift."""
    pytest.importorskip("PIL", reason="needs Pillow (the `images` extra)")
    arrays = generate_synthetic_poses(2, seed=3, cameras=_small_rig())
    config = RenderConfig(image_size=32, jitter=0.0, blur=1.0, noise=0.0)
    rendered = RenderedPoseFrames(arrays, config)
    _write_frames(tmp_path, rendered, [".png", ".jpg", ".png", ".npy"])
    reader = ImageFolderFrames(arrays, tmp_path, config)
    batch = next(iter(DataLoader(reader, batch_size=2, collate_fn=collate_pose_images)))
    expected = collate_pose_images([rendered[0], rendered[1]])
    assert batch.images.shape == expected.images.shape
    torch.testing.assert_close(batch.crop, expected.crop)
    torch.testing.assert_close(batch.joints2d, expected.joints2d)
    error = (batch.images - expected.images).abs().mean(dim=(2, 3, 4))
    other = (batch.images - expected.images.roll(1, dims=1)).abs().mean(dim=(2, 3, 4))
    assert error.max() < 0.04
    assert (other > 3 * error).all()
    shifted = (batch.images[..., 1:] - expected.images[..., :-1]).abs().mean()
    assert shifted > 1.5 * error.mean()


def test_image_folder_reader_names_what_is_missing(tmp_path, monkeypatch):
    """Faulty variants: a bare KeyError/FileNotFoundError; Pillow imported eagerly."""
    arrays = generate_synthetic_poses(1, seed=3)
    with pytest.raises(DatasetNotFoundError, match="absent"):
        ImageFolderFrames(arrays, tmp_path / "absent")
    reader = ImageFolderFrames(arrays, tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"54138969.*0\.jpg"):
        reader[0]
    (tmp_path / "frame.png").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"lightning-energy\[images\]"):
        read_frame(tmp_path / "frame.png")


@pytest.mark.skipif(not (REAL_ROOT / "sequences.csv").is_file(),
                    reason=f"Human3.6M development data not staged at {REAL_ROOT} (relative to "
                           "the repository root): real-pose rendering not checked")
def test_real_poses_render_with_the_real_cameras():
    """Faulty variants: cameras of another subject; keypoints off the drawn person."""
    arrays = load_h36m(REAL_ROOT, ["S8"], actions=["Walking"], max_frames_per_subject=2)
    frames = RenderedPoseFrames(arrays)
    batch = frames[1]
    torch.testing.assert_close(batch.joints2d.double(), _projection(batch), atol=1e-3, rtol=0)
    assert ((batch.joints2d > 0) & (batch.joints2d < 1000)).all()
    for camera in range(4):
        view = frames.view(1, camera)
        uv = image_to_crop(view.keypoints, view.crop)[~view.occluded].long()
        assert view.body_mask[uv[:, 1], uv[:, 0]].float().mean() > 0.9
