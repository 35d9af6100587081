"""StackedHourglass: shapes, every stack's heatmaps, re-injection, input checks."""

from __future__ import annotations

import pytest
import torch

from lightning_energy.errors import ShapeError
from lightning_energy.networks import StackedHourglass


@pytest.mark.parametrize(
    ("stacks", "depth", "channels", "stride", "size"),
    [(1, 1, 8, 2, 16), (2, 3, 16, 2, 64), (3, 2, 8, 4, 32), (2, 1, 4, 4, 24)],
)
def test_one_heatmap_tensor_per_stack_at_size_over_stride(
    stacks: int, depth: int, channels: int, stride: int, size: int
) -> None:
    """Catches a wrong downsampling in the stem/hourglass or dropped intermediate outputs."""
    net = StackedHourglass(num_joints=5, stacks=stacks, depth=depth, channels=channels,
                           stride=stride)
    heatmaps = net(torch.rand(3, 3, size, size))
    assert len(heatmaps) == stacks
    for h in heatmaps:
        assert h.shape == (3, 5, size // stride, size // stride)
        assert torch.isfinite(h).all()


def test_every_stack_is_supervisable_and_feeds_the_next() -> None:
    """Catches intermediate heatmaps detached from the stem, or heatmaps not re-injected."""
    net = StackedHourglass(num_joints=4, stacks=3, depth=2, channels=8)
    heatmaps = net(torch.rand(2, 3, 32, 32))
    heatmaps[0].square().sum().backward(retain_graph=True)
    assert net.stem[0].weight.grad.abs().sum() > 0
    assert net.heads[0].weight.grad.abs().sum() > 0
    assert net.heads[1].weight.grad is None  # later stacks do not shape the first output
    net.zero_grad()
    heatmaps[-1].square().sum().backward()
    for k in range(2):  # stack k's heatmaps and features reach the last output
        assert net.merge_heatmaps[k].weight.grad.abs().sum() > 0
        assert net.merge_features[k].weight.grad.abs().sum() > 0
        assert net.heads[k].weight.grad.abs().sum() > 0


def test_stacks_differ() -> None:
    """Catches a network returning the same tensor for every stack."""
    net = StackedHourglass(num_joints=3, stacks=2, depth=1, channels=8)
    first, last = net(torch.rand(2, 3, 16, 16))
    assert not torch.allclose(first, last)


@pytest.mark.parametrize(
    "shape", [(2, 3, 30, 30), (2, 1, 32, 32), (2, 3, 32, 64), (3, 32, 32), (2, 3, 16, 16)]
)
def test_wrong_image_shape_is_a_clear_error(shape: tuple[int, ...]) -> None:
    """Catches a silent crop/pad or a cryptic conv error for a bad image size."""
    net = StackedHourglass(stacks=1, depth=3, channels=8, stride=4)  # S multiple of 32
    with pytest.raises(ShapeError, match=r"Expected `images` of shape \(N, 3, S, S\) with S "
                                         r"divisible by 32 .*got \("):
        net(torch.rand(shape))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"stride": 3}, "stride"), ({"stacks": 0}, "stacks"), ({"depth": 0}, "depth")],
)
def test_bad_configuration_raises_at_construction(kwargs: dict[str, int], match: str) -> None:
    """Catches a misconfiguration that would only fail (or silently misbehave) in forward."""
    with pytest.raises(ValueError, match=match):
        StackedHourglass(**kwargs)


def test_docstring_example() -> None:
    import doctest

    from lightning_energy.networks import hourglass

    result = doctest.testmod(hourglass, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
