"""Rendered person crops from 3D poses and calibrated cameras (a stand-in for real images).

:func:`render_view` draws a person as capsules (cylinders with round ends) between the 17
Human3.6M joints, ray-cast exactly (:mod:`~lightning_energy.datasets.raycast`) with a z-buffer
and Lambertian shading, into a square crop around the person, over a cluttered textured
background, with limb-like distractor capsules, occluding patches, blur and noise
(:mod:`~lightning_energy.datasets.render_textures`). These are **rendered images, not
photographs**: they let a detector be trained end to end from pixels where the real Human3.6M
videos are unavailable.

Camera model: every crop pixel is mapped to its full-image pixel, undistorted with the stored
``k``, ``p`` and cast as a ray, so the drawing follows the same distorted projection as the
returned ``keypoints``, which are the real projection of the 3D joints
(:func:`~lightning_energy.energies.cameras.project_perspective` with ``f, c, k, p``).

Pixel convention (crop and full image): continuous (u, v), u to the right, v down, pixel column
i spans [i, i + 1) so its centre is at i + 0.5. A crop is (scale, u0, v0):
full-image pixel = (u0, v0) + crop pixel / scale.

Left and right limbs share their colours (a ``left_right_contrast`` of a few percent is the only
cue besides the face on the head's front), so left/right confusions are as natural as for a
real detector.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lightning_energy.datasets import render_textures as tex
from lightning_energy.datasets.raycast import intersect_capsules, nearest_surface
from lightning_energy.energies.cameras import pixels_to_normalised, project_perspective

#: The 16 bones of the 17-joint skeleton; bone (9, 10) is the head.
BONES = ((0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
         (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16))  # fmt: skip
#: Hip-to-shoulder capsules on each side, filling the torso.
TORSO_SIDES = ((1, 14), (4, 11))
HEAD_BONE = 9
# Part of each capsule (BONES, then TORSO_SIDES): 0 shirt, 1 sleeve, 2 trousers, 3 skin, 4 head.
_PARTS = (2, 2, 2, 2, 2, 2, 0, 0, 3, 4, 0, 0, 1, 0, 0, 1, 0, 0)
_LEFT = (0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1)
_OCCLUSION_TOLERANCE_MM = 15.0


@dataclass(frozen=True)
class RenderConfig:
    """How :func:`render_view` draws a crop. The defaults give a deliberately hard task.

    Attributes:
        image_size: Crop side S in pixels.
        margin: The crop's side is ``(1 + margin)`` times the larger side of the projected
            joints' bounding box (so limbs and head fit).
        jitter: Random crop change: the side is scaled by ``exp(U(−jitter, jitter))`` and the
            centre moved by ``U(−jitter, jitter)`` crop sides in each axis.
        bone_radii: Capsule radius (mm) of each bone of :data:`BONES` (16 values; the head
            bone's radius is the head's).
        torso_radius: Radius (mm) of the two hip-to-shoulder capsules that fill the torso.
        left_right_contrast: Left limbs are this fraction brighter than right ones (a subtle
            cue; 0 makes the sides identical but for the face on the head).
        distractors: Limb-like capsules near the person, not attached to it (half of them
            in the person's clothing colours).
        occluders: Up to this many textured patches drawn in front of everything.
        clutter: Textured shapes in the background.
        blur: Gaussian blur, standard deviation in pixels.
        noise: Gaussian pixel noise, standard deviation (intensities in [0, 1]).
        person: False draws everything but the person (negatives for a detector).
    """

    image_size: int = 64
    margin: float = 0.3
    jitter: float = 0.1
    bone_radii: tuple[float, ...] = (75.0, 75.0, 50.0, 75.0, 75.0, 50.0, 115.0, 125.0, 45.0,
                                     88.0, 55.0, 45.0, 38.0, 55.0, 45.0, 38.0)  # fmt: skip
    torso_radius: float = 70.0
    left_right_contrast: float = 0.04
    distractors: int = 4
    occluders: int = 1
    clutter: int = 12
    blur: float = 0.5
    noise: float = 0.03
    person: bool = True

    def __post_init__(self) -> None:
        if self.image_size < 4 or len(self.bone_radii) != len(BONES):
            raise ValueError(
                f"Expected `image_size` >= 4 and {len(BONES)} `bone_radii`, got "
                f"{self.image_size} and {len(self.bone_radii)}.")
        numbers = (self.margin, self.jitter, self.torso_radius, self.blur, self.noise,
                   self.distractors, self.occluders, self.clutter, *self.bone_radii)
        if min(numbers) < 0 or min(self.bone_radii) <= 0:
            raise ValueError(f"Expected non-negative settings and positive radii, got {self}.")

    def fingerprint(self) -> str:
        """A short stable hash of the settings (for cache file names)."""
        text = repr(sorted(dataclasses.asdict(self).items()))
        return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass
class RenderedView:
    """One rendered crop.

    Attributes:
        image: (3, S, S) float32 RGB in [0, 1].
        crop: (3,) float64 (scale, u0, v0): full-image pixel = (u0, v0) + crop pixel / scale.
        keypoints: (J, 2) float64 full-image pixels: the projection of the 3D joints with the
            camera's distortion (NaN for a joint behind the camera).
        occluded: (J,) bool: the joint is hidden by another body part, a distractor or an
            occluder (per the z-buffer), lies outside the crop, or is behind the camera.
        body_mask: (S, S) bool: pixels where the person is the visible surface.
    """

    image: Tensor
    crop: Tensor
    keypoints: Tensor
    occluded: Tensor
    body_mask: Tensor


def crop_to_image(points: Tensor, crop: Tensor) -> Tensor:
    """Full-image pixels of crop pixels (differentiable).

    Args:
        points: (..., 2) crop pixels (u, v).
        crop: (..., 3) crops (scale, u0, v0), broadcast against ``points``' leading dims.

    Returns:
        (..., 2) full-image pixels ``(u0, v0) + points / scale``.

    Example:
        >>> crop_to_image(torch.tensor([32.0, 0.0]), torch.tensor([0.5, 100.0, 200.0])).tolist()
        [164.0, 200.0]
    """
    return crop[..., 1:] + points / crop[..., :1]


def image_to_crop(points: Tensor, crop: Tensor) -> Tensor:
    """Crop pixels of full-image pixels (differentiable; the inverse of :func:`crop_to_image`).

    Args:
        points: (..., 2) full-image pixels (u, v).
        crop: (..., 3) crops (scale, u0, v0).

    Returns:
        (..., 2) crop pixels ``(points − (u0, v0)) · scale``.

    Example:
        >>> image_to_crop(torch.tensor([164.0, 200.0]), torch.tensor([0.5, 100.0, 200.0])).tolist()
        [32.0, 0.0]
    """
    return (points - crop[..., 1:]) * crop[..., :1]


def crop_around(keypoints: Tensor, image_size: int, margin: float, jitter: float = 0.0,
                gen: torch.Generator | None = None) -> Tensor:
    """The square crop (scale, u0, v0) around the finite ``keypoints`` (J, 2) full-image pixels.

    The side is ``(1 + margin)`` times the larger side of their bounding box, then (with a
    generator and ``jitter`` > 0) scaled by ``exp(U(−jitter, jitter))`` and shifted by
    ``U(−jitter, jitter)`` sides per axis.

    Example:
        >>> crop_around(torch.tensor([[100.0, 100.0], [200.0, 300.0]]), 64, 0.0).tolist()
        [0.32, 50.0, 100.0]
    """
    points = keypoints[torch.isfinite(keypoints).all(-1)].double()
    if points.shape[0] == 0:
        raise ValueError("Expected a joint in front of the camera to crop around, got none.")
    low, high = points.min(0).values, points.max(0).values
    side = (high - low).max().clamp(min=1.0) * (1 + margin)
    centre = (low + high) / 2
    if gen is not None and jitter > 0:
        draw = (2 * torch.rand(3, generator=gen, dtype=torch.float64) - 1) * jitter
        side = side * draw[0].exp()
        centre = centre + draw[1:] * side
    corner = centre - side / 2
    return torch.cat(((image_size / side).reshape(1), corner))


def view_seed(subject: str, sequence: str, frame: int, camera: int | str, seed: int) -> int:
    """A seed for one view that is the same in every process and run (CRC-32 of the labels).

    Example:
        >>> view_seed("S8", "Walking_1", 25, 0, 0) == view_seed("S8", "Walking_1", 25, 0, 0)
        True
    """
    return zlib.crc32(f"{subject}|{sequence}|{int(frame)}|{camera}|{int(seed)}".encode())


@dataclass
class _Scene:
    start: Tensor  # (K, 3) capsule axes in camera coordinates, mm
    end: Tensor
    radius: Tensor  # (K,)
    colour: Tensor  # (K, 3)
    joints: list[tuple[int, ...]]  # joints each capsule carries (empty for distractors)
    num_body: int


def _body(cam: Tensor, config: RenderConfig, palette: Tensor) -> _Scene:
    """Capsules of the person (camera coordinates) with their colours from ``palette`` (5, 3)."""
    pairs = [*BONES, *TORSO_SIDES]
    start = torch.stack([cam[a] for a, _ in pairs])
    end = torch.stack([cam[b] for _, b in pairs])
    head = start[HEAD_BONE].clone()
    start[HEAD_BONE] = head + 0.3 * (end[HEAD_BONE] - head)
    end[HEAD_BONE] = head + 0.7 * (end[HEAD_BONE] - head)
    radius = torch.tensor([*config.bone_radii, config.torso_radius, config.torso_radius],
                          dtype=torch.float64)  # fmt: skip
    left = torch.tensor(_LEFT, dtype=torch.float64).unsqueeze(-1)
    colour = palette[list(_PARTS)] * (1 + config.left_right_contrast * left)
    return _Scene(start, end, radius, colour.clamp(0, 1), [tuple(p) for p in pairs], len(pairs))


def _distractors(scene: _Scene, rays: Tensor, palette: Tensor, count: int,
                 gen: torch.Generator) -> _Scene:
    """Append ``count`` loose capsules around the person (some in its clothing colours)."""
    depth = scene.start[:, 2].mean()
    pick = torch.randint(rays.shape[0], (count,), generator=gen)
    centre = rays[pick] / rays[pick, 2:] * (depth + torch.empty(count, 1).uniform_(-700, 1500,
                                                                              generator=gen))
    direction = torch.randn(count, 3, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    half = torch.empty(count, 1, dtype=torch.float64).uniform_(120, 230, generator=gen)
    radius = torch.empty(count, dtype=torch.float64).uniform_(35, 75, generator=gen)
    own = palette[torch.randint(3, (count,), generator=gen)]
    colour = torch.where(torch.rand(count, 1, generator=gen) < 0.5, own,
                         tex.random_colours(count, gen).double())  # fmt: skip
    return _Scene(
        torch.cat((scene.start, centre - half * direction)),
        torch.cat((scene.end, centre + half * direction)),
        torch.cat((scene.radius, radius)), torch.cat((scene.colour, colour)),
        scene.joints + [()] * count, scene.num_body)  # fmt: skip


def _palette(gen: torch.Generator) -> Tensor:
    """(5, 3) colours: shirt, sleeve (shirt or skin), trousers, skin, hair."""
    shirt, trousers = tex.random_colours(2, gen).double()
    skin = torch.tensor([0.87, 0.66, 0.52], dtype=torch.float64) * (
        0.45 + 0.55 * torch.rand(1, generator=gen, dtype=torch.float64))
    hair = 0.05 + 0.3 * torch.rand(3, generator=gen, dtype=torch.float64)
    sleeve = shirt if bool(torch.rand(1, generator=gen) < 0.5) else skin
    return torch.stack((shirt, sleeve, 0.75 * trousers, skin, hair))


def _crop_rays(crop: Tensor, size: int, cams: dict[str, Tensor]) -> Tensor:
    """(S·S, 3) unit rays (camera coordinates) through the centres of the crop's pixels."""
    return crop_rays(tex.pixel_grid(size), crop, cams)


def crop_rays(points: Tensor, crop: Tensor, cams: dict[str, Tensor]) -> Tensor:
    """(P, 3) unit rays (camera coordinates) through (P, 2) crop pixels, lens distortion undone.

    ``cams`` holds the view's ``f``, ``c``, ``k``, ``p`` (float64 tensors).
    """
    pixels = crop_to_image(points, crop)
    xy = pixels_to_normalised(pixels.view(1, 1, -1, 2), cams["f"].view(1, 1, 2),
                              cams["c"].view(1, 1, 2), cams["k"].view(1, 1, 3),
                              cams["p"].view(1, 1, 2))[0, 0]  # fmt: skip
    rays = torch.cat((xy, torch.ones_like(xy[:, :1])), dim=-1)
    rays = torch.nan_to_num(rays, nan=0.0, posinf=0.0, neginf=0.0)
    return rays / rays.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def _shade(scene: _Scene, rays: Tensor, background: Tensor, cam: Tensor, skin: Tensor,
           gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Z-buffered, Lambert-shaded colours (S·S, 3) over ``background``, and the hit index."""
    light = torch.tensor([0.0, -0.6, -1.0], dtype=torch.float64)
    light = light + torch.tensor([0.8, 0.4, 0.0], dtype=torch.float64) * (
        2 * torch.rand(3, generator=gen, dtype=torch.float64) - 1)
    light = light / light.norm()
    ambient = 0.3 + 0.2 * torch.rand(1, generator=gen, dtype=torch.float64)
    index, _, normal = nearest_surface(rays, scene.start, scene.end, scene.radius)
    colour = scene.colour[index.clamp(min=0)]
    # The face: the front of the head is skin, the rest hair.
    forward = torch.linalg.cross(cam[11] - cam[14], cam[8] - cam[0])
    forward = forward / forward.norm().clamp(min=1e-9)
    face = (index == HEAD_BONE) & (scene.num_body > HEAD_BONE) & ((normal @ forward) > 0.15)
    colour = torch.where(face.unsqueeze(-1), skin, colour)
    light_factor = ambient + (1 - ambient) * (normal @ light).clamp(min=0).unsqueeze(-1)
    shaded = (colour * light_factor * 1.1).clamp(0, 1)
    return torch.where((index >= 0).unsqueeze(-1), shaded.float(), background), index


def _hidden(scene: _Scene, cam: Tensor) -> Tensor:
    """(J,) joints whose ray meets another capsule before the joint's own surface."""
    rays = cam / cam.norm(dim=-1, keepdim=True)
    hits = intersect_capsules(rays, scene.start, scene.end, scene.radius)  # (K, J)
    carries = torch.zeros_like(hits, dtype=torch.bool)
    for k, joints in enumerate(scene.joints):
        carries[k, list(joints)] = True
    inf = torch.full_like(hits, float("inf"))
    own = torch.where(carries, hits, inf).min(0).values
    other = torch.where(carries, inf, hits).min(0).values
    return other < own - _OCCLUSION_TOLERANCE_MM


def _as_tensors(**values: object) -> dict[str, Tensor]:
    return {k: torch.as_tensor(np.asarray(v), dtype=torch.float64) for k, v in values.items()}


def render_view(
    joints_world: Tensor | np.ndarray,
    R: Tensor | np.ndarray,
    T: Tensor | np.ndarray,
    f: Tensor | np.ndarray,
    c: Tensor | np.ndarray,
    k: Tensor | np.ndarray,
    p: Tensor | np.ndarray,
    config: RenderConfig | None = None,
    seed: int = 0,
) -> RenderedView:
    """Render the person of one frame seen by one camera into a square crop.

    Args:
        joints_world: (J, 3) joints in the world frame, mm (J = 17, Human3.6M order).
        R: (3, 3) world→camera rotation.
        T: (3,) camera centre in the world, mm.
        f: (2,) focal lengths, pixels.
        c: (2,) principal point, pixels.
        k: (3,) radial distortion.
        p: (2,) tangential distortion.
        config: Drawing settings; None uses :class:`RenderConfig`'s defaults.
        seed: Seed of every random draw (crop jitter, colours, light, clutter, distractors,
            occluders, noise): the same seed gives the same image.

    Returns:
        The :class:`RenderedView`; its ``keypoints`` are the real (distorted) projection of
        the joints in full-image pixels, and the drawing follows the same projection.

    Example:
        >>> from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
        >>> arrays = generate_synthetic_poses(1, seed=0)
        >>> cams = arrays.cameras
        >>> view = render_view(arrays.joints3d[0], cams.R[0, 0], cams.T[0, 0], cams.f[0, 0],
        ...                    cams.c[0, 0], cams.k[0, 0], cams.p[0, 0], seed=3)
        >>> tuple(view.image.shape), tuple(view.keypoints.shape), view.occluded.dtype
        ((3, 64, 64), (17, 2), torch.bool)
    """
    config = config or RenderConfig()
    t = _as_tensors(joints=joints_world, R=R, T=T, f=f, c=c, k=k, p=p)
    cam = (t["joints"] - t["T"]) @ t["R"].T
    keypoints = project_perspective(t["joints"][None], t["R"][None, None], t["T"][None, None],
                                    t["f"][None, None], t["c"][None, None], t["k"][None, None],
                                    t["p"][None, None])[0, 0]  # fmt: skip
    front = cam[:, 2] > 0
    keypoints = torch.where(front.unsqueeze(-1), keypoints, torch.nan)
    gen = torch.Generator().manual_seed(int(seed))
    size = config.image_size
    crop = crop_around(keypoints, size, config.margin, config.jitter, gen)
    rays = _crop_rays(crop, size, t)
    palette = _palette(gen)
    scene = _distractors(_body(cam, config, palette), rays, palette, config.distractors, gen)
    background = tex.clutter_background(size, config.clutter, gen)
    count = int(torch.randint(config.occluders + 1, (1,), generator=gen))
    masks, colours = tex.occluder_patches(size, count, gen)
    drawn = scene if config.person else _without_body(scene)
    pixels, index = _shade(drawn, rays, background, cam, palette[3], gen)
    pixels = tex.paint(pixels, masks, colours)
    image = pixels.T.reshape(3, size, size)
    image = tex.gaussian_blur(image, config.blur)
    image = image + config.noise * torch.randn(image.shape, generator=gen, dtype=image.dtype)
    covered = masks.any(0)
    body = (index >= 0) & (index < drawn.num_body) & ~covered
    occluded = _hidden(scene, cam) | ~front | _outside_or_covered(keypoints, crop, covered, size)
    return RenderedView(image.clamp(0, 1), crop, keypoints, occluded,
                        body.view(size, size))


def _without_body(scene: _Scene) -> _Scene:
    n = scene.num_body
    return _Scene(scene.start[n:], scene.end[n:], scene.radius[n:], scene.colour[n:],
                  scene.joints[n:], 0)


def _outside_or_covered(keypoints: Tensor, crop: Tensor, covered: Tensor, size: int) -> Tensor:
    """(J,) joints outside the crop or under an occluding patch."""
    uv = image_to_crop(torch.nan_to_num(keypoints, nan=-1.0), crop)
    inside = ((uv >= 0) & (uv < size)).all(-1)
    cell = uv.floor().long().clamp(0, size - 1)
    return ~inside | covered[cell[:, 1] * size + cell[:, 0]]
