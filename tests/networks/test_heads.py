"""soft_argmax, confidence, heatmap supervision and KeypointDetector (gradients, learning, I/O)."""

from __future__ import annotations

import doctest
import math
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

from lightning_energy.errors import ShapeError
from lightning_energy.networks import (
    KeypointDetector,
    heads,
    heatmap_loss,
    heatmap_targets,
    heatmaps,
    soft_argmax,
)


def gaussian_logits(centres: list[tuple[float, float]], size: tuple[int, int], stride: int,
                    sigma: float) -> torch.Tensor:
    """Log-Gaussians at (u, v) input px sampled at cell centres (c + 0.5)·stride: (1, K, H, W)."""
    h, w = size
    v, u = torch.meshgrid((torch.arange(h, dtype=torch.float64) + 0.5) * stride,
                          (torch.arange(w, dtype=torch.float64) + 0.5) * stride, indexing="ij")
    maps = [-((u - cu) ** 2 + (v - cv) ** 2) / (2 * sigma**2) for cu, cv in centres]
    return torch.stack(maps)[None]


# ----------------------------------------------------------------------------- soft_argmax


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_soft_argmax_recovers_gaussian_centres_in_the_pixel_convention(stride: int) -> None:
    """Catches a half-pixel/half-cell offset, a stride error or swapped u/v in the expectation."""
    h, w = 16, 24  # not square, so a u/v swap cannot pass
    cell = float(stride)
    centres = [
        (12.0 * cell, 8.0 * cell),  # on a cell border
        (5.5 * cell, 3.5 * cell),  # on a cell centre
        (17.37 * cell, 6.81 * cell),  # off-centre, sub-cell
        (2.6 * cell, 9.3 * cell),  # near the left border (3.25 sigma)
        (w * cell - 2.7 * cell, h * cell - 2.6 * cell),  # near the bottom-right corner
        (2.6 * cell, 2.6 * cell),  # near the top-left corner
    ]
    logits = gaussian_logits(centres, (h, w), stride, sigma=0.8 * cell)
    keypoints, confidence = soft_argmax(logits, beta=1.0, stride=stride)
    expected = torch.tensor(centres, dtype=torch.float64)[None]
    assert (keypoints - expected).abs().max() < 0.05
    assert keypoints.dtype == torch.float64
    assert confidence.shape == (1, len(centres))


def test_beta_sharpens_the_distribution() -> None:
    """Catches `beta` being ignored (it must divide the peak's variance)."""
    logits = gaussian_logits([(32.0, 32.0)], (32, 32), 2, sigma=4.0)
    _, loose = soft_argmax(logits, beta=1.0, stride=2, radius=4.0)
    _, sharp = soft_argmax(logits, beta=4.0, stride=2, radius=4.0)
    assert loose.item() == pytest.approx(16 / (16 + 16), abs=1e-3)
    assert sharp.item() == pytest.approx(16 / (16 + 4), abs=1e-3)


def test_confidence_is_the_windowed_mass_closed_form() -> None:
    """Catches a confidence that is not radius²/(radius²+σ²) for a Gaussian peak of std σ."""
    for sigma, radius in [(2.0, 4.0), (3.0, 3.0), (1.5, 6.0)]:
        logits = gaussian_logits([(33.0, 30.0)], (32, 32), 2, sigma=sigma)
        _, confidence = soft_argmax(logits, beta=1.0, stride=2, radius=radius)
        assert confidence.item() == pytest.approx(radius**2 / (radius**2 + sigma**2), abs=1e-3)


def test_confidence_high_for_one_sharp_peak_low_for_two_peaks_or_a_flat_map() -> None:
    """Catches a confidence blind to a left/right confusion (a normalised peak of each mode)."""
    sharp = gaussian_logits([(30.0, 30.0)], (32, 32), 2, sigma=1.0)
    two = torch.logaddexp(*gaussian_logits([(14.0, 30.0), (46.0, 30.0)], (32, 32), 2, 1.0)[0])
    flat = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    _, conf_sharp = soft_argmax(sharp, beta=1.0, stride=2)
    kp_two, conf_two = soft_argmax(two[None, None], beta=1.0, stride=2)
    _, conf_flat = soft_argmax(flat, beta=1.0, stride=2)
    assert conf_sharp.item() > 0.9
    assert kp_two[0, 0].tolist() == pytest.approx([30.0, 30.0], abs=1e-6)  # between the peaks
    assert 0 < conf_two.item() < 0.01
    assert 0 < conf_flat.item() < 0.05
    # A one-cell distribution is certain.
    delta = torch.full((1, 1, 8, 8), -200.0, dtype=torch.float64)
    delta[0, 0, 3, 4] = 0.0
    assert soft_argmax(delta, beta=1.0, stride=2)[1].item() == pytest.approx(1.0)


def test_soft_argmax_gradients_match_finite_differences() -> None:
    """Catches a non-differentiable confidence (hard window, argmax) or a wrong backward."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x: soft_argmax(x, beta=1.7, stride=2, radius=3.0), (logits,)
    )


def test_soft_argmax_half_precision_is_computed_in_float32() -> None:
    """Catches a softmax over many cells in float16 (rounding of order 0.1 px)."""
    logits = gaussian_logits([(61.3, 40.7)], (64, 64), 2, sigma=2.0).half()
    keypoints, _ = soft_argmax(logits, beta=1.0, stride=2)
    assert keypoints.dtype == torch.float32
    assert keypoints[0, 0].tolist() == pytest.approx([61.3, 40.7], abs=0.05)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.zeros(2, 4, 4), 1.0, 2), ShapeError, r"`heatmaps` of shape \(N, J, H, W\)"),
        ((torch.zeros(1, 1, 4, 4), 0.0, 2), ValueError, "beta"),
        ((torch.zeros(1, 1, 4, 4), 1.0, 0), ValueError, "stride"),
    ],
)
def test_soft_argmax_rejects_bad_arguments(args: tuple, error: type, match: str) -> None:
    """Catches silent broadcasting of a 3-D heatmap or a zero temperature."""
    with pytest.raises(error, match=match):
        soft_argmax(*args)


# ----------------------------------------------------------------------------- supervision


def test_heatmap_targets_peak_on_the_keypoint_cell_and_zero_when_invisible() -> None:
    """Catches a target offset by half a cell, or invisible (NaN) joints leaking into targets."""
    keypoints = torch.tensor([[[13.0, 5.0], [float("nan"), float("nan")], [0.5, 30.9]]])
    visible = torch.tensor([[True, False, True]])
    target = heatmap_targets(keypoints, visible, (8, 8), stride=4, sigma=1.5)
    assert target.shape == (1, 3, 8, 8)
    assert torch.isfinite(target).all()
    assert target[0, 1].abs().max() == 0
    # (13, 5) lies in cell column 3 (12..16), row 1 (4..8); centre (14, 6): distance² = 2.
    assert target[0, 0].argmax().item() == 1 * 8 + 3
    assert target[0, 0, 1, 3].item() == pytest.approx(math.exp(-2 / (2 * 1.5**2)))
    assert target[0, 2].argmax().item() == 7 * 8 + 0


def test_heatmap_loss_is_zero_for_the_target_and_ignores_invisible_joints() -> None:
    """Catches invisible joints counted in the loss, or a loss not minimised by the target."""
    gen = torch.Generator().manual_seed(0)
    keypoints = 4 + 24 * torch.rand(2, 3, 2, generator=gen)
    visible = torch.tensor([[True, False, True], [True, True, False]])
    perfect = heatmap_targets(keypoints, visible, (16, 16), 2, 2.0).clamp_min(1e-30).log()
    loss = heatmap_loss([perfect], keypoints, visible, stride=2, sigma=2.0)
    assert loss.abs() < 1e-5
    noisy = perfect + torch.randn(perfect.shape, generator=gen)
    base = heatmap_loss([noisy], keypoints, visible, stride=2, sigma=2.0)
    assert base > 0.1
    moved = keypoints.clone()
    moved[~visible] = float("nan")
    scrambled = noisy.clone()
    scrambled[~visible] = 5 * torch.randn(int((~visible).sum()), 16, 16, generator=gen)
    assert heatmap_loss([scrambled], moved, visible, 2, 2.0) == pytest.approx(base.item())
    # Mean over stacks.
    both = heatmap_loss([perfect, noisy], keypoints, visible, stride=2, sigma=2.0)
    assert both.item() == pytest.approx((loss + base).item() / 2, rel=1e-5)


def test_heatmap_loss_skips_joints_outside_the_heatmap() -> None:
    """Catches a NaN/inf loss from a keypoint outside the image (its target map is all zeros)."""
    keypoints = torch.tensor([[[10.0, 10.0], [-40.0, 10.0]]])
    visible = torch.ones(1, 2, dtype=torch.bool)
    logits = torch.randn(1, 2, 8, 8, requires_grad=True)
    loss = heatmap_loss([logits], keypoints, visible, stride=2, sigma=1.0)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[0, 1].abs().max() == 0


# ----------------------------------------------------------------------------- detector


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small convolutions run as fast on one thread, and do not stall when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_detector() -> KeypointDetector:
    return KeypointDetector(num_joints=2, stacks=1, depth=1, channels=4, stride=2).double()


@pytest.mark.usefixtures("one_thread")
def test_detector_gradients_wrt_weights_and_image_match_finite_differences() -> None:
    """Catches a detached head, a broken backward in the network, or a non-smooth keypoint path."""
    detector = tiny_detector()
    names = [n for n, _ in detector.named_parameters()]
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 16, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    params = tuple(p.detach().clone().requires_grad_() for p in detector.parameters())

    def outputs(image: torch.Tensor, *weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = functional_call(detector, dict(zip(names, weights, strict=True)), (image,))
        return out.keypoints, out.confidence

    # fast_mode checks the Jacobian along random directions (one JVP/VJP pair, not n columns).
    assert torch.autograd.gradcheck(outputs, (image, *params), fast_mode=True, atol=1e-5)


def blob_images(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint j is a Gaussian blob in colour channel j at a random position: (n, 3, 32, 32)."""
    keypoints = 4 + 24 * torch.rand(n, 3, 2, generator=gen)
    centres = torch.arange(32) + 0.5
    du = centres[None, None, None, :] - keypoints[..., 0, None, None]
    dv = centres[None, None, :, None] - keypoints[..., 1, None, None]
    return torch.exp(-(du**2 + dv**2) / (2 * 1.5**2)), keypoints


@pytest.mark.usefixtures("one_thread")
def test_detector_learns_to_find_blobs() -> None:
    """Catches a detector/loss pair that cannot learn (wrong target convention, detached head)."""
    gen = torch.Generator().manual_seed(0)
    detector = KeypointDetector(num_joints=3, stacks=1, depth=2, channels=16, stride=2)
    optimizer = torch.optim.Adam(detector.parameters(), lr=3e-3)
    visible = torch.ones(16, 3, dtype=torch.bool)
    for _ in range(100):
        images, keypoints = blob_images(16, gen)
        loss = heatmap_loss(detector(images).heatmaps, keypoints, visible, stride=2, sigma=2.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    images, keypoints = blob_images(64, torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = detector.eval()(images)
    error = (out.keypoints - keypoints).norm(dim=-1)
    assert error.mean() < 1.0
    assert error.max() < 2.5
    assert out.confidence.mean() > 0.6  # radius 4 px, target sigma 2 px: ideal 0.8


# ----------------------------------------------------------------------------- save / load


def trained_like(detector: KeypointDetector) -> KeypointDetector:
    """Perturb weights and BN statistics so that a load that skipped anything would show."""
    with torch.no_grad():
        for tensor in detector.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn_like(tensor)).abs_()
    return detector.eval()


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    """Catches a save that drops buffers (BN statistics) or the constructor configuration."""
    detector = trained_like(KeypointDetector(num_joints=5, stacks=2, depth=2, channels=8,
                                             stride=4, beta=2.0, radius=5.0))
    detector.save(tmp_path / "detector.pt")
    loaded = KeypointDetector.load(tmp_path / "detector.pt").eval()
    assert loaded.config == detector.config
    images = torch.rand(2, 3, 32, 32)
    a, b = detector(images), loaded(images)
    assert torch.equal(a.keypoints, b.keypoints)
    assert torch.equal(a.confidence, b.confidence)
    again = KeypointDetector(5, 2, 2, 8, 4, beta=2.0, radius=5.0,
                             checkpoint=str(tmp_path / "detector.pt")).eval()
    assert torch.equal(again(images).keypoints, a.keypoints)


@pytest.mark.parametrize("prefix", ["backbone.", "detector.", "model.backbone.", ""])
def test_loads_from_a_lightning_checkpoint_under_a_prefix(tmp_path: Path, prefix: str) -> None:
    """Catches a prefix that is not found by keys, or weights silently left at initialisation."""
    detector = trained_like(KeypointDetector(num_joints=3, stacks=1, depth=1, channels=4))
    state = {prefix + k: v for k, v in detector.state_dict().items()}
    if prefix:
        state["layer.energy.weights"] = torch.ones(3)  # the energy's parameters beside it
    checkpoint = {
        "epoch": 3,
        "global_step": 120,
        "state_dict": state,
        # Not loadable with weights_only=True: exercises the trusted-file fallback.
        "hyper_parameters": {"namespace": types.SimpleNamespace(lr=1e-3)},
    }
    torch.save(checkpoint, tmp_path / "last.ckpt")
    loaded = KeypointDetector(num_joints=3, stacks=1, depth=1, channels=4,
                              checkpoint=tmp_path / "last.ckpt").eval()
    images = torch.rand(2, 3, 16, 16)
    assert torch.equal(loaded(images).keypoints, detector(images).keypoints)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """Catches a download attempt or a bare torch error for a path that does not exist."""
    with pytest.raises(FileNotFoundError, match=r"nowhere\.ckpt"):
        KeypointDetector(checkpoint=tmp_path / "nowhere.ckpt")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pt"):
        KeypointDetector.load(tmp_path / "nowhere.pt")


def test_mismatching_keys_name_the_file_and_the_keys(tmp_path: Path) -> None:
    """Catches a partial (non-strict) load or an error that does not say which keys differ."""
    other = KeypointDetector(num_joints=3, stacks=2, depth=1, channels=4)
    torch.save({"state_dict": {"backbone." + k: v for k, v in other.state_dict().items()}},
               tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match=r"other\.ckpt.*prefix 'backbone\.'.*missing keys \[\]"
                                         r".*unexpected keys \['network\.hourglasses\.1\."):
        KeypointDetector(num_joints=3, stacks=1, depth=1, channels=4,
                         checkpoint=tmp_path / "other.ckpt")
    torch.save({"state_dict": {"head.weight": torch.ones(2)}}, tmp_path / "unrelated.ckpt")
    with pytest.raises(ValueError, match=r"unrelated\.ckpt.*missing keys \['network\.stem"):
        KeypointDetector(num_joints=3, stacks=1, depth=1, channels=4,
                         checkpoint=tmp_path / "unrelated.ckpt")


def test_wrong_configuration_or_wrong_file_is_a_clear_error(tmp_path: Path) -> None:
    """Catches a saved detector loaded into another architecture, or a garbage file unpickled."""
    KeypointDetector(num_joints=3, stacks=1, depth=1, channels=4).save(tmp_path / "d.pt")
    with pytest.raises(ValueError, match=r"d\.pt holds a KeypointDetector with .*'channels': 4"):
        KeypointDetector(num_joints=3, stacks=1, depth=1, channels=8, checkpoint=tmp_path / "d.pt")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"Cannot read .*notes\.txt"):
        KeypointDetector(checkpoint=tmp_path / "notes.txt")
    torch.save({"state_dict": {}}, tmp_path / "lightning.ckpt")
    with pytest.raises(ValueError, match=r"lightning\.ckpt was not written by KeypointDetector"):
        KeypointDetector.load(tmp_path / "lightning.ckpt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"list\.pt holds no state dict"):
        KeypointDetector(checkpoint=tmp_path / "list.pt")


@pytest.mark.parametrize("module", [heads, heatmaps])
def test_docstring_examples(module: types.ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
