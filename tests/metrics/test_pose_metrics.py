"""MPJPE / PA-MPJPE against NumPy / SciPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from lightning_energy.errors import ShapeError
from lightning_energy.metrics import (
    MPJPE,
    PAMPJPE,
    SystematicOffset,
    mpjpe,
    pa_mpjpe,
    systematic_offset,
)
from lightning_energy.metrics.functional import body_frame_errors

B, J = 12, 17


def make_poses(seed: int, batch: int = B, noise: float = 30.0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = 300.0 * torch.randn(batch, J, 3, generator=gen, dtype=torch.float64)
    pred = target + noise * torch.randn(batch, J, 3, generator=gen, dtype=torch.float64)
    return pred, target


def make_mask(seed: int, batch: int = B) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, J, generator=gen) > 0.25


def ref_mpjpe(pred: np.ndarray, target: np.ndarray, root: int | None, mask: np.ndarray) -> float:
    errors = []
    for b in range(pred.shape[0]):
        p, t = pred[b], target[b]
        if root is not None:
            p, t = p - p[root], t - t[root]
        errors += [np.linalg.norm(p[j] - t[j]) for j in range(J) if mask[b, j]]
    return float(np.mean(errors))


def ref_pa_errors(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-joint errors after the best proper similarity (Kabsch rotation from SciPy)."""
    p0, t0 = p - p.mean(0), t - t.mean(0)
    rot, _ = Rotation.align_vectors(t0, p0)  # minimises sum ||t0_i - R p0_i||^2, det R = +1
    rotated = rot.apply(p0)
    scale = np.sum(t0 * rotated) / np.sum(p0**2)
    return np.linalg.norm(scale * rotated + t.mean(0) - t, axis=1)


def ref_pa_mpjpe(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    errors = [ref_pa_errors(pred[b][mask[b]], target[b][mask[b]]) for b in range(len(pred))]
    return float(np.concatenate(errors).mean())


@pytest.mark.parametrize("root", [0, 3, -1, None])
@pytest.mark.parametrize("masked", [False, True])
def test_mpjpe_matches_numpy(root: int | None, masked: bool) -> None:
    pred, target = make_poses(0)
    mask = make_mask(1) if masked else torch.ones(B, J, dtype=torch.bool)
    expected = ref_mpjpe(pred.numpy(), target.numpy(), root, mask.numpy())
    got = mpjpe(pred, target, root, joint_mask=mask if masked else None)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_mpjpe_hand_computed_and_per_joint_mask() -> None:
    target = torch.zeros(1, 3, 3, dtype=torch.float64)
    pred = torch.tensor([[[1.0, 0, 0], [1, 3, 4], [1, 0, 12]]], dtype=torch.float64)
    assert mpjpe(pred, target).item() == pytest.approx((0 + 5 + 12) / 3)
    assert mpjpe(pred, target, root=None).item() == pytest.approx((1 + 26**0.5 + 145**0.5) / 3)
    joint_mask = torch.tensor([True, True, False])  # (J,) form: joint 2 undetected
    assert mpjpe(pred, target, joint_mask=joint_mask).item() == pytest.approx(2.5)


def test_masked_nan_joint_is_ignored() -> None:
    pred, target = make_poses(2)
    mask = torch.ones(B, J, dtype=torch.bool)
    mask[:, 9] = False
    corrupted = pred.clone()
    corrupted[:, 9] = float("nan")
    for fn in (mpjpe, pa_mpjpe):
        got = fn(corrupted, target, joint_mask=mask)
        assert torch.isfinite(got)
        assert got.item() == pytest.approx(fn(pred, target, joint_mask=mask).item(), rel=1e-12)


@pytest.mark.parametrize("masked", [False, True])
def test_pa_mpjpe_matches_scipy_rotation(masked: bool) -> None:
    pred, target = make_poses(3, noise=80.0)
    mask = make_mask(4) if masked else torch.ones(B, J, dtype=torch.bool)
    expected = ref_pa_mpjpe(pred.numpy(), target.numpy(), mask.numpy())
    got = pa_mpjpe(pred, target, joint_mask=mask if masked else None)
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_pa_mpjpe_matches_orthogonal_procrustes_without_reflection() -> None:
    pred, target = make_poses(5, noise=20.0)
    errors = []
    for p, t in zip(pred.numpy(), target.numpy(), strict=True):
        p0, t0 = p - p.mean(0), t - t.mean(0)
        rot, sigma_sum = orthogonal_procrustes(p0, t0)  # min ||p0 R - t0||
        assert np.linalg.det(rot) > 0  # small noise: the optimum is a proper rotation
        aligned = sigma_sum / np.sum(p0**2) * p0 @ rot + t.mean(0)
        errors.append(np.linalg.norm(aligned - t, axis=1))
    assert pa_mpjpe(pred, target).item() == pytest.approx(np.mean(errors), rel=1e-9)


def test_pa_mpjpe_corrects_reflections() -> None:
    _, target = make_poses(6)
    mirrored = target * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    p0 = mirrored[0].numpy() - mirrored[0].numpy().mean(0)
    t0 = target[0].numpy() - target[0].numpy().mean(0)
    rot, _ = orthogonal_procrustes(p0, t0)
    assert np.linalg.det(rot) < 0  # an orthogonal fit would undo the mirror and score 0
    expected = ref_pa_mpjpe(mirrored.numpy(), target.numpy(), np.ones((B, J), dtype=bool))
    got = pa_mpjpe(mirrored, target)
    assert got.item() > 50.0
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_pa_mpjpe_is_invariant_to_similarity_of_pred() -> None:
    pred, target = make_poses(7)
    rot = torch.from_numpy(Rotation.random(random_state=0).as_matrix())
    moved = 0.37 * pred @ rot.T + torch.tensor([100.0, -40.0, 2000.0], dtype=torch.float64)
    assert pa_mpjpe(moved, target).item() == pytest.approx(pa_mpjpe(pred, target).item(), 1e-9)
    assert pa_mpjpe(moved, pred).item() < 1e-9
    assert mpjpe(moved, pred).item() > 10.0


def test_pa_mpjpe_float32_inputs_return_float32() -> None:
    pred, target = make_poses(8)
    got = pa_mpjpe(pred.float(), target.float())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(pa_mpjpe(pred, target).item(), rel=1e-5)


@pytest.mark.parametrize(("metric_cls", "fn"), [(MPJPE, mpjpe), (PAMPJPE, pa_mpjpe)])
def test_class_equals_functional_over_uneven_batches(metric_cls: type, fn: object) -> None:
    pred, target = make_poses(9, batch=16)
    mask = make_mask(10, batch=16)
    metric = metric_cls()
    for chunk in ((0, 5), (5, 7), (7, 16)):
        sl = slice(*chunk)
        metric.update(pred[sl], target[sl], mask[sl])
    expected = fn(pred, target, joint_mask=mask)  # type: ignore[operator]
    assert metric.compute().item() == pytest.approx(expected.item(), rel=1e-12)
    metric.reset()
    batch_value = metric(pred[:3], target[:3])
    assert batch_value.item() == pytest.approx(fn(pred[:3], target[:3]).item(), rel=1e-12)  # type: ignore[operator]


def test_mpjpe_class_root_and_gradients() -> None:
    pred, target = make_poses(11)
    metric = MPJPE(root=None)
    metric.update(pred, target)
    assert metric.compute().item() == pytest.approx(mpjpe(pred, target, None).item(), rel=1e-12)
    leaf = pred.clone().requires_grad_(True)
    mpjpe(leaf, target).backward()  # the root joint has distance 0: gradient must stay finite
    assert leaf.grad is not None
    assert torch.isfinite(leaf.grad).all()


def test_mpjpe_gradcheck_without_root() -> None:
    pred, target = make_poses(12, batch=2)
    leaf = pred.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: mpjpe(x, target, None), (leaf,))


def test_compute_before_update_is_nan() -> None:
    metric = PAMPJPE()
    with pytest.warns(UserWarning, match="before"):
        assert torch.isnan(metric.compute())


BAD = "Expected `pred` of shape (B, J, 3), got (8, 16, 2) (torch.float32)."


@pytest.mark.parametrize("call", [mpjpe, pa_mpjpe, MPJPE().update, PAMPJPE().update])
def test_same_shape_error_from_class_and_functional(call: object) -> None:
    with pytest.raises(ShapeError) as info:
        call(torch.zeros(8, 16, 2), torch.zeros(8, 16, 2))  # type: ignore[operator]
    assert str(info.value) == BAD


@pytest.mark.parametrize("call", [mpjpe, pa_mpjpe, MPJPE().update, PAMPJPE().update])
def test_mismatched_pred_and_target_are_named(call: object) -> None:
    with pytest.raises(ShapeError, match=r"`pred` and `target`.*\(8, 16, 3\).*\(8, 17, 3\)"):
        call(torch.zeros(8, 16, 3), torch.zeros(8, 17, 3))  # type: ignore[operator]


@pytest.mark.parametrize("bad_mask", [torch.ones(8, 15, dtype=torch.bool), torch.ones(8, 16)])
def test_bad_joint_mask(bad_mask: torch.Tensor) -> None:
    with pytest.raises(ShapeError, match="`joint_mask` of shape"):
        mpjpe(torch.zeros(8, 16, 3), torch.zeros(8, 16, 3), joint_mask=bad_mask)


def test_bad_root() -> None:
    with pytest.raises(ShapeError, match=r"`root` in \[-16, 16\), got 16"):
        mpjpe(torch.zeros(8, 16, 3), torch.zeros(8, 16, 3), root=16)
    with pytest.raises(ValueError, match="`root` to be an int or None"):
        MPJPE(root=1.5)  # type: ignore[arg-type]


def _biased_poses(bias: torch.Tensor, noise: float, frames: int = 400):
    """Poses whose root-aligned error is ``bias`` (J, 3) in each frame's body frame + noise.

    Every frame has its own yaw and position, so a bias taken in world axes would average out.
    """
    gen = torch.Generator().manual_seed(0)
    j = bias.shape[0]
    body = 300.0 * torch.randn(frames, j, 3, generator=gen, dtype=torch.float64)
    body[:, 1] = torch.tensor([150.0, 0.0, 0.0])  # right hip on +x of the body frame
    body[:, 4] = torch.tensor([-150.0, 0.0, 0.0])
    body[:, 0] = 0.0
    yaw = 2 * torch.pi * torch.rand(frames, generator=gen, dtype=torch.float64)
    c, s_ = torch.cos(yaw), torch.sin(yaw)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rot = torch.stack([torch.stack([c, -s_, zero], -1), torch.stack([s_, c, zero], -1),
                       torch.stack([zero, zero, one], -1)], -2)  # body → world
    shift = 1000.0 * torch.randn(frames, 1, 3, generator=gen, dtype=torch.float64)
    noisy = bias + noise * torch.randn(frames, j, 3, generator=gen, dtype=torch.float64)
    noisy = noisy - noisy.mean(0) + bias  # the noise has exactly zero mean per joint
    noisy[:, 0] = 0.0  # the root is aligned
    target = torch.einsum("bik,bjk->bji", rot, body) + shift
    pred = torch.einsum("bik,bjk->bji", rot, body + noisy) + shift
    return pred, target, noisy


def test_systematic_offset_recovers_a_body_frame_bias():
    """Faulty variant: the bias averaged in world axes (each frame's yaw differs: it cancels)."""
    bias = torch.zeros(17, 3, dtype=torch.float64)
    bias[10] = torch.tensor([0.0, 0.0, 23.0])  # the head 23 mm too high
    bias[13] = torch.tensor([6.0, -8.0, 0.0])  # a shoulder 10 mm off
    pred, target, noisy = _biased_poses(bias, noise=15.0)
    assert torch.allclose(systematic_offset(pred, target), torch.tensor(33.0 / 17,
                                                                        dtype=torch.float64))
    expected = (noisy - bias).norm(dim=-1).mean()
    assert torch.allclose(systematic_offset(pred, target, remainder=True), expected)
    assert float(mpjpe(pred, target)) > float(expected)  # the bias costs MPJPE


def test_systematic_offset_class_equals_functional_over_batches():
    """Faulty variant: the class averaging per-batch biases instead of pooling the frames."""
    bias = torch.zeros(17, 3, dtype=torch.float64)
    bias[5] = torch.tensor([0.0, 10.0, 0.0])
    pred, target, _ = _biased_poses(bias, noise=30.0, frames=50)
    for remainder in (False, True):
        metric = SystematicOffset(remainder=remainder)
        for part in torch.split(torch.arange(50), [3, 40, 7]):
            metric.update(pred[part], target[part])
        assert torch.allclose(metric.compute(),
                              systematic_offset(pred, target, remainder=remainder))
    assert torch.isnan(SystematicOffset().compute())


def test_systematic_offset_names_bad_joints():
    pose = torch.zeros(2, 17, 3)
    with pytest.raises(ValueError, match="`left_hip`"):
        systematic_offset(pose, pose, left_hip=2.5)
    with pytest.raises(ShapeError, match="`right_hip` in"):
        systematic_offset(pose, pose, right_hip=17)


def test_systematic_offset_class_uses_its_own_joint_layout():
    """Faulty variant: the class passes the default root or hips instead of its own (the same
    poses with the joints reordered then read another body frame)."""
    bias = torch.zeros(17, 3, dtype=torch.float64)
    bias[10] = torch.tensor([0.0, 12.0, 23.0])
    pred, target, _ = _biased_poses(bias, noise=10.0, frames=30)
    order = torch.arange(17).roll(5)  # new position k holds old joint order[k]
    position = torch.argsort(order)  # old joint j now sits at position[j]
    root, right_hip, left_hip = (int(position[j]) for j in (0, 1, 4))
    for remainder in (False, True):
        metric = SystematicOffset(root=root, right_hip=right_hip, left_hip=left_hip,
                                  remainder=remainder)
        metric.update(pred[:, order], target[:, order])
        assert torch.allclose(metric.compute(),
                              systematic_offset(pred, target, remainder=remainder))


def test_systematic_offset_before_any_frame_is_a_float64_nan():
    """Faulty variant: the empty result built without ``dtype=torch.float64``."""
    with pytest.warns(UserWarning, match="before"):
        value = SystematicOffset().compute()
    assert value.dtype == torch.float64
    assert torch.isnan(value)


def test_body_frame_x_axis_is_horizontal_when_the_hips_are_tilted():
    """Faulty variant: the hip vector's height kept in the x axis (the frame then tilts with the
    hips and a purely vertical error leaks into x)."""
    target = torch.zeros(1, 17, 3, dtype=torch.float64)
    target[0, 1] = torch.tensor([150.0, 0.0, 40.0])  # right hip 8 cm higher than the left
    target[0, 4] = torch.tensor([-150.0, 0.0, -40.0])
    target[0, 10] = torch.tensor([0.0, 0.0, 500.0])
    pred = target.clone()
    pred[0, 10, 2] += 20.0  # the head 2 cm too high
    errors = body_frame_errors(pred, target)
    torch.testing.assert_close(errors[0, 10], torch.tensor([0.0, 0.0, 20.0], dtype=torch.float64))


def test_body_frame_joints_are_named_and_may_count_from_the_end():
    """Faulty variants: a message naming another argument; ``-J < index`` (root = −J refused)."""
    pred, target = make_poses(3)
    with pytest.raises(ShapeError, match="`root` in"):
        systematic_offset(pred, target, root=17)
    torch.testing.assert_close(systematic_offset(pred, target, root=-17),
                               systematic_offset(pred, target, root=0))


def test_pose_target_errors_name_the_target_and_its_layout():
    """Faulty variant: a message naming another argument or another layout."""
    with pytest.raises(ShapeError, match=r"^Expected `target` of shape \(B, J, 3\), got"):
        mpjpe(torch.zeros(2, 17, 3), torch.zeros(2, 17, 2))


def test_root_may_count_from_the_end():
    """Faulty variant: ``-J < root`` (root = −J, the first joint, refused)."""
    pred, target = make_poses(4)
    torch.testing.assert_close(mpjpe(pred, target, root=-J), mpjpe(pred, target, root=0))
    torch.testing.assert_close(MPJPE(root=-J)(pred, target), mpjpe(pred, target, root=0))


def test_body_frame_defaults_are_the_human36m_layout():
    """Faulty variant: another default root or hip (pelvis 0, right hip 1, left hip 4)."""
    pred, target = make_poses(5)
    torch.testing.assert_close(body_frame_errors(pred, target),
                               body_frame_errors(pred, target, root=0, right_hip=1, left_hip=4))
    assert not torch.allclose(body_frame_errors(pred, target),
                              body_frame_errors(pred, target, root=1, right_hip=1, left_hip=4))
