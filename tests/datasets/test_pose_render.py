"""The person renderer: determinism, projection, crop transforms, occlusion, where the body is."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_energy.datasets.pose_batch import LEFT_RIGHT_PAIRS
from lightning_energy.datasets.pose_render import (
    BONES,
    TORSO_SIDES,
    RenderConfig,
    _body,
    _palette,
    crop_around,
    crop_rays,
    crop_to_image,
    image_to_crop,
    render_view,
    view_seed,
)
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.energies.cameras import project_perspective

ARRAYS = generate_synthetic_poses(3, seed=0)


@pytest.fixture(autouse=True)
def _one_thread():
    """Rendering is many small tensor ops: on a busy machine extra threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _camera(camera: int) -> dict[str, torch.Tensor]:
    cams = ARRAYS.cameras
    return {name: torch.as_tensor(getattr(cams, name)[0, camera])
            for name in ("R", "T", "f", "c", "k", "p")}  # fmt: skip


def _render(frame: int = 0, camera: int = 0, seed: int = 0, **config: object):
    return render_view(ARRAYS.joints3d[frame], **_camera(camera),
                       config=RenderConfig(**config), seed=seed)  # type: ignore[arg-type]


def test_same_seed_same_image_and_other_views_differ():
    """Faulty variants: drawing from the global RNG; ignoring the seed or the camera."""
    first = _render(seed=5)
    torch.manual_seed(123)
    again = _render(seed=5)
    assert torch.equal(first.image, again.image)
    assert torch.equal(first.crop, again.crop)
    assert not torch.equal(first.image, _render(seed=6).image)
    other = _render(camera=1, seed=5)
    assert not torch.equal(first.image, other.image)
    assert not torch.allclose(first.keypoints, other.keypoints)
    assert first.image.dtype == torch.float32
    assert first.image.shape == (3, 64, 64)
    assert first.image.min() >= 0
    assert first.image.max() <= 1


def test_view_seed_is_stable_across_processes():
    """Faulty variant: Python's salted hash() (differs per process); seeds ignoring labels."""
    assert view_seed("S8", "Walking_1", 25, "54138969", 0) == 1126259883
    seeds = {view_seed("S8", "Walking_1", f, c, 0) for f in (25, 30) for c in range(4)}
    assert len(seeds) == 8


def test_keypoints_are_the_distorted_projection_of_the_joints():
    """Faulty variants: keypoints from an undistorted pinhole model or in crop pixels."""
    for camera in range(4):
        view = _render(frame=1, camera=camera)
        cam = {k: v[None, None] for k, v in _camera(camera).items()}
        expected = project_perspective(torch.as_tensor(ARRAYS.joints3d[1:2]).double(), **cam)
        torch.testing.assert_close(view.keypoints, expected[0, 0], rtol=0, atol=1e-6)
    pinhole = project_perspective(torch.as_tensor(ARRAYS.joints3d[1:2]).double(),
                                  **{k: v[None, None] for k, v in _camera(3).items()
                                     if k in ("R", "T", "f", "c")})  # fmt: skip
    assert (view.keypoints - pinhole[0, 0]).norm(dim=-1).max() > 0.5  # distortion matters


def test_drawing_rays_pass_through_the_joints():
    """Faulty variants: drawing with a pinhole model (distortion ignored) or a wrong focal
    length while the keypoints use the distorted projection."""
    for camera in range(4):
        view = _render(frame=2, camera=camera)
        cams = {k: v.double() for k, v in _camera(camera).items()}
        rays = crop_rays(image_to_crop(view.keypoints, view.crop), view.crop, cams)
        joints = (torch.as_tensor(ARRAYS.joints3d[2]).double() - cams["T"]) @ cams["R"].T
        cosine = (rays * joints / joints.norm(dim=-1, keepdim=True)).sum(-1)
        assert (1 - cosine).max() < 1e-10


def test_crop_round_trip_and_pixel_convention():
    """Faulty variants: scale applied the wrong way; crop origin at a pixel centre."""
    gen = torch.Generator().manual_seed(0)
    points = 1000 * torch.rand(5, 7, 2, generator=gen, dtype=torch.float64)
    crop = torch.cat((0.05 + torch.rand(5, 1, 1, generator=gen, dtype=torch.float64),
                      500 * torch.rand(5, 1, 2, generator=gen, dtype=torch.float64)), -1)
    torch.testing.assert_close(crop_to_image(image_to_crop(points, crop), crop), points)
    torch.testing.assert_close(image_to_crop(crop_to_image(points, crop), crop), points)
    crop = torch.tensor([0.25, 100.0, 40.0], requires_grad=True)
    # The crop's first pixel centre (0.5, 0.5) is 2 full-image pixels from its corner.
    corner = crop_to_image(torch.tensor([0.5, 0.5]), crop)
    assert corner.tolist() == [102.0, 42.0]
    corner.sum().backward()
    assert crop.grad is not None
    assert torch.isfinite(crop.grad).all()


def test_crop_frames_the_person_with_margin():
    """Faulty variant: a crop that cuts the person or ignores the margin."""
    view = _render(jitter=0.0, margin=0.5)
    uv = image_to_crop(view.keypoints, view.crop)
    assert uv.min() >= 64 * 0.25 / 1.5 - 1e-6
    assert uv.max() <= 64 - 64 * 0.25 / 1.5 + 1e-6
    span = uv.max(0).values - uv.min(0).values
    assert span.max() == pytest.approx(64 / 1.5)
    jittered = crop_around(view.keypoints, 64, 0.5, 0.2, torch.Generator().manual_seed(1))
    assert not torch.allclose(jittered, view.crop)


def _posed_for_occlusion() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Camera at the origin looking along +z; a person facing it 4 m away, right wrist
    tucked behind the chest, left arm stretched out sideways."""
    joints = torch.tensor([
        [0, 0, 0], [-100, 0, 0], [-100, 450, 0], [-100, 900, 0], [100, 0, 0], [100, 450, 0],
        [100, 900, 0], [0, -230, 0], [0, -480, 0], [0, -600, -80], [0, -700, 0],
        [150, -450, 0], [420, -450, 0], [680, -450, 0],  # left arm, out to the side
        [-150, -450, 0], [-150, -330, 250], [0, -300, 320],  # right wrist behind the chest
    ], dtype=torch.float64) + torch.tensor([0.0, 0.0, 4000.0], dtype=torch.float64)
    camera = {"R": torch.eye(3, dtype=torch.float64), "T": torch.zeros(3, dtype=torch.float64),
              "f": torch.tensor([1000.0, 1000.0]), "c": torch.tensor([500.0, 500.0]),
              "k": torch.zeros(3), "p": torch.zeros(2)}
    return joints, camera


def test_a_joint_behind_the_torso_is_occluded_and_an_outstretched_one_is_not():
    """Faulty variants: a z-buffer ignoring depth; a joint hidden by its own limb's surface."""
    joints, camera = _posed_for_occlusion()
    config = RenderConfig(distractors=0, occluders=0, jitter=0.0)
    view = render_view(joints, **camera, config=config, seed=0)
    assert view.occluded[16]  # right wrist, 300 mm behind the chest
    assert not view.occluded[13]  # left wrist, in the open
    assert not view.occluded[[0, 3, 6, 8, 10, 12]].any()
    # The camera seen from behind: now the right wrist is in front of the chest.
    behind = render_view(joints, **{**camera, "R": torch.diag(torch.tensor(
        [-1.0, 1.0, -1.0], dtype=torch.float64)), "T": torch.tensor(
        [0.0, 0.0, 8000.0], dtype=torch.float64)}, config=config, seed=0)  # fmt: skip
    assert not behind.occluded[16]


def _differs_at(a: torch.Tensor, b: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    cell = uv.floor().long()
    return (a[:, cell[:, 1], cell[:, 0]] - b[:, cell[:, 1], cell[:, 0]]).abs().amax(0) > 1e-3


def test_the_person_is_drawn_where_the_keypoints_are():
    """Faulty variants: keypoints off the drawn body (flipped v, wrong crop origin, pinhole
    drawing vs distorted keypoints); a body painted outside its mask."""
    hits, total = 0, 0
    for frame in range(3):
        for camera in range(4):
            seed = 10 * frame + camera
            view = _render(frame, camera, seed)
            empty = _render(frame, camera, seed, person=False)
            uv = image_to_crop(view.keypoints, view.crop)
            seen = ~view.occluded
            hits += int((_differs_at(view.image, empty.image, uv[seen])
                         & view.body_mask[uv[seen, 1].long(), uv[seen, 0].long()]).sum())
            total += int(seen.sum())
            near_body = F.max_pool2d(view.body_mask[None, None].float(), 5, 1, 2)[0, 0] > 0
            assert torch.equal(view.image[:, ~near_body], empty.image[:, ~near_body])
            assert view.body_mask.sum() > 100
            assert not empty.body_mask.any()
    assert total > 100
    assert hits / total > 0.95


def test_left_and_right_limbs_look_alike():
    """Faulty variant: distinct left/right colours (a trivial cue no real detector gets)."""
    mirror = dict(LEFT_RIGHT_PAIRS) | {left: right for right, left in LEFT_RIGHT_PAIRS}
    pairs = [*BONES, *TORSO_SIDES]
    cam = torch.as_tensor(ARRAYS.joints3d[0]).double()
    for contrast in (0.0, RenderConfig().left_right_contrast):
        palette = _palette(torch.Generator().manual_seed(3)).clamp(max=0.8)
        colour = _body(cam, RenderConfig(left_right_contrast=contrast), palette).colour
        checked = 0
        for bone, (a, b) in enumerate(pairs):
            if a in (11, 12, 13, 4, 5, 6) or b in (11, 12, 13, 4, 5, 6):  # a left bone
                right = pairs.index(tuple(mirror.get(j, j) for j in (a, b)))
                torch.testing.assert_close(colour[bone], colour[right] * (1 + contrast))
                checked += 1
        assert checked == 7
    assert 0 < RenderConfig().left_right_contrast <= 0.1


def test_config_rejects_wrong_settings():
    """Faulty variant: a radius list of the wrong length silently truncated."""
    with pytest.raises(ValueError, match="bone_radii"):
        RenderConfig(bone_radii=(50.0,) * 3)
    with pytest.raises(ValueError, match="non-negative"):
        RenderConfig(noise=-0.1)
    assert RenderConfig().fingerprint() == RenderConfig().fingerprint()
    assert RenderConfig().fingerprint() != RenderConfig(blur=1.0).fingerprint()
