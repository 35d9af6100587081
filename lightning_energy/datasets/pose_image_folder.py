"""Reader of real multi-view video frames, cropped around the projected ground truth.

Layout (next to the ``S<s>/<sequence>.npz`` and ``cameras.json`` of ``h36m_multiview_sh``, or
in a folder of its own)::

    ROOT/S<s>/<sequence>/<camera id>/<frame>.jpg    (or .jpeg, .png, .npy)

``<frame>`` is the 50 Hz frame index stored in the ``.npz`` (``frame_index``), written plainly
or zero-padded to 6 digits (``25.jpg`` or ``000025.jpg``); ``<camera id>`` is e.g.
``54138969``. A ``.npy`` frame is an (H, W, 3) uint8 or [0, 1] float array and needs nothing
extra; JPEG and PNG need Pillow (``pip install 'lightning-energy[images]'``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_energy.datasets.pose_batch import CAMERA_IDS, PoseArrays
from lightning_energy.datasets.pose_images import ViewFrames, camera_of
from lightning_energy.datasets.pose_render import (
    RenderConfig,
    RenderedView,
    crop_around,
    crop_to_image,
    image_to_crop,
    view_seed,
)
from lightning_energy.datasets.render_textures import pixel_grid
from lightning_energy.energies.cameras import project_perspective
from lightning_energy.errors import DatasetNotFoundError, reading

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".npy")


def read_frame(path: str | Path) -> Tensor:
    """(3, H, W) float32 RGB in [0, 1] from a JPEG, PNG or ``.npy`` file.

    Raises:
        ImportError: For JPEG/PNG when Pillow is missing (the ``images`` extra).
    """
    path = Path(path)
    with reading(path, "an (H, W, 3) RGB image"):
        if path.suffix == ".npy":
            array = np.load(path)
        else:
            try:
                from PIL import Image
            except ImportError as err:
                raise ImportError(
                    f"Reading {path.suffix} frames needs Pillow: install the `images` extra "
                    "(pip install 'lightning-energy[images]') or store frames as .npy."
                ) from err
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        scale = 255.0 if array.dtype == np.uint8 else 1.0
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32) / scale).permute(
            2, 0, 1)


def resample_crop(frame: Tensor, crop: Tensor, size: int) -> Tensor:
    """The (3, S, S) crop ``crop`` = (scale, u0, v0) of a (3, H, W) frame (zeros outside it).

    The frame is first shrunk with an antialiasing filter to about the crop's scale, then
    sampled bilinearly at the crop's pixel centres.
    """
    _, height, width = frame.shape
    scale = float(crop[0])
    image = frame.unsqueeze(0)
    if scale < 1:
        shape = (max(round(height * scale), 1), max(round(width * scale), 1))
        image = F.interpolate(image, size=shape, mode="bilinear", antialias=True,
                              align_corners=False)  # fmt: skip
    pixels = crop_to_image(pixel_grid(size), crop.double())  # full-image pixels
    norm = torch.stack((2 * pixels[:, 0] / width - 1, 2 * pixels[:, 1] / height - 1), dim=-1)
    grid = norm.to(image.dtype).view(1, size, size, 2)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[0]  # fmt: skip


class ImageFolderFrames(ViewFrames):
    """Real frames of each view, cropped around the projected 3D ground truth.

    Crops are made as for rendered images (:func:`crop_around` with ``config.margin`` and
    ``config.jitter``; the other drawing settings are unused) and the batches are the same
    :class:`PoseImageBatch`; ``occluded`` only marks joints outside the crop (real frames
    carry no occlusion labels).

    Args:
        arrays: The frames' poses and cameras (e.g. from
            :func:`~lightning_energy.datasets.h36m.load_h36m`).
        root: Folder in the layout above.
        config: Crop size, margin and jitter.
        seed: Seed of the fixed crop jitter (per view, as :func:`view_seed`).
        augment: Draw the jitter afresh from torch's RNG at each access.
        dtype: Floating dtype of the batch tensors.

    Raises:
        DatasetNotFoundError: At access, when a frame's file is missing (names the paths).

    Example:
        >>> frames = ImageFolderFrames(arrays, "/data/h36m_frames")  # doctest: +SKIP
        >>> frames[0].images.shape  # doctest: +SKIP
        torch.Size([1, 4, 3, 64, 64])
    """

    def __init__(self, arrays: PoseArrays, root: str | Path, config: RenderConfig | None = None,
                 seed: int = 0, augment: bool = False,
                 dtype: torch.dtype = torch.float32) -> None:
        self.arrays = arrays
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetNotFoundError(
                f"Image folder '{self.root}' does not exist (resolved: '{self.root.resolve()}'). "
                "Pass the folder holding S<s>/<sequence>/<camera id>/<frame>.jpg as `root`.")
        self.config = config or RenderConfig()
        self.seed = seed
        self.augment = augment
        self.dtype = dtype

    def path(self, index: int, camera: int) -> Path:
        """The file of view ``camera`` of frame ``index``.

        Raises:
            DatasetNotFoundError: If no candidate file exists.
        """
        a = self.arrays
        folder = self.root / str(a.subject[index]) / str(a.sequence[index]) / CAMERA_IDS[camera]
        frame = int(a.frame[index])
        names = [f"{stem}{suffix}" for stem in (str(frame), f"{frame:06d}")
                 for suffix in IMAGE_SUFFIXES]  # fmt: skip
        for name in names:
            if (folder / name).is_file():
                return folder / name
        raise DatasetNotFoundError(
            f"No frame {frame} in '{folder}': expected one of {names}. Store frames as "
            "ROOT/S<s>/<sequence>/<camera id>/<frame>.jpg (see ImageFolderFrames).")

    def view(self, index: int, camera: int) -> RenderedView:
        """Read and crop view ``camera`` of frame ``index``."""
        cams = {k: torch.as_tensor(v, dtype=torch.float64)
                for k, v in camera_of(self.arrays, index, camera).items()}  # fmt: skip
        joints = torch.as_tensor(self.arrays.joints3d[index], dtype=torch.float64)
        keypoints, depth = project_perspective(
            joints[None], *(cams[k][None, None] for k in ("R", "T", "f", "c", "k", "p")),
            return_depth=True)
        keypoints = torch.where((depth > 0)[0, 0, :, None], keypoints[0, 0], torch.nan)
        gen = torch.Generator().manual_seed(self._seed(index, camera))
        size = self.config.image_size
        crop = crop_around(keypoints, size, self.config.margin, self.config.jitter, gen)
        image = resample_crop(read_frame(self.path(index, camera)), crop, size)
        uv = image_to_crop(torch.nan_to_num(keypoints, nan=-1.0), crop)
        outside = ~((uv >= 0) & (uv < size)).all(-1)
        return RenderedView(image.clamp(0, 1), crop, keypoints, outside,
                            torch.zeros(size, size, dtype=torch.bool))

    def _seed(self, index: int, camera: int) -> int:
        if self.augment:
            return int(torch.randint(2**31 - 1, ()))
        a = self.arrays
        return view_seed(str(a.subject[index]), str(a.sequence[index]), int(a.frame[index]),
                         CAMERA_IDS[camera], self.seed)
