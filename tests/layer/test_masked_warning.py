"""Masked samples are never silent: the layer warns (rate-limited) above a share of the batch,
non-finite solves included, and the README's example converges on every sample."""

import re
import warnings
from pathlib import Path

import pytest
import torch

import lightning_energy as le
import lightning_energy.layer as layer_module

README = Path(__file__).resolve().parents[2] / "README.md"


class NaNForSecondHalf(le.Energy):
    """½‖x − c‖², but NaN for the second half of the batch (an energy gone bad on some data)."""

    solution_shape = (2,)

    def forward(self, x, inputs):
        value = 0.5 * ((x - inputs) ** 2).sum(-1)
        bad = torch.arange(x.shape[0]) >= x.shape[0] // 2
        return torch.where(bad, torch.full_like(value, float("nan")), value)

    def initial_solution(self, inputs):
        return torch.zeros_like(inputs)


def quadratic_layer(**kwargs):
    return le.EnergyLayer(le.QuadraticEnergy(3), le.Newton(tol=1e-6), **kwargs)


def caught(fn):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fn()
    return [w for w in seen if "get no gradient" in str(w.message)]


def test_nan_start_is_masked_with_a_warning_once():
    """Catches: a NaN x0 coming back NONFINITE and masked with no word (the default policy), and
    a warning repeated every batch (no rate limit)."""
    layer = quadratic_layer()
    x0 = torch.zeros(8, 3)
    x0[:2] = float("nan")
    first = caught(lambda: layer(torch.randn(8, 3), x0))
    assert len(first) == 1
    message = str(first[0].message)
    assert "2 of 8 samples (25%)" in message
    assert "2 nonfinite" in message
    assert "warn_masked_share" in message
    assert caught(lambda: layer(torch.randn(8, 3), x0)) == []  # muted for a while


def test_warning_comes_back_after_the_interval(monkeypatch):
    """Catches: a layer that warns once in its life and never again."""
    layer = quadratic_layer()
    x0 = torch.full((4, 3), float("nan"))
    assert len(caught(lambda: layer(torch.randn(4, 3), x0))) == 1
    monkeypatch.setattr(layer_module, "MASKED_WARNING_INTERVAL_S", 0.0)
    assert len(caught(lambda: layer(torch.randn(4, 3), x0))) == 1


def test_energy_returning_nan_warns():
    """Catches: NONFINITE solves left out of the masked share."""
    layer = le.EnergyLayer(NaNForSecondHalf(), le.Newton(), warn_masked_share=0.4)
    warned = caught(lambda: layer(torch.randn(6, 2)))
    assert len(warned) == 1
    assert "3 nonfinite" in str(warned[0].message)


def test_threshold_is_a_share_above_which_to_warn():
    """Catches: warning at (not above) the share, or ignoring `warn_masked_share`."""
    x0 = torch.zeros(4, 3)
    x0[0] = float("nan")  # 25% masked
    assert caught(lambda: quadratic_layer(warn_masked_share=0.25)(torch.randn(4, 3), x0)) == []
    assert len(caught(lambda: quadratic_layer(warn_masked_share=0.2)(torch.randn(4, 3), x0))) == 1
    all_nan = torch.full((4, 3), torch.nan)
    assert caught(lambda: quadratic_layer(warn_masked_share=1.0)(torch.randn(4, 3), all_nan)) == []
    with pytest.raises(ValueError, match=r"`warn_masked_share` in \[0, 1\], got 1.5"):
        quadratic_layer(warn_masked_share=1.5)


def test_wrong_inputs_are_blamed_not_an_x0_never_passed():
    """Catches: the old message blaming `x0` when the start came from energy.initial_solution."""
    with pytest.raises(le.ShapeError, match=r"`QuadraticEnergy.initial_solution\(inputs\)` of "
                       r"shape \(8, 3\).*got \(8, 4\).*check the shapes of `inputs`: \(8, 4\)"):
        quadratic_layer()(torch.randn(8, 4))


def test_empty_batch_is_a_shape_error():
    """Catches: torch's reshape RuntimeError on a batch of 0 samples."""
    with pytest.raises(le.ShapeError, match=r"at least one sample in `inputs`.*\(0, 3\)"):
        quadratic_layer()(torch.randn(0, 3))


def readme_example() -> str:
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    return block


@pytest.mark.parametrize("seed", range(20))
def test_readme_example_converges_and_reaches_every_input(seed):
    """Catches: the old example (Newton(tol=1e-9) in float32) leaving 3 of 8 samples STALLED with
    exactly zero input gradient, under a comment saying gradients reach the inputs."""
    torch.manual_seed(seed)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no masked-sample warning either
        exec(compile(readme_example(), str(README), "exec"), namespace)
    solution, inputs = namespace["solution"], namespace["inputs"]
    assert bool(solution.converged.all()), solution.status_counts()
    assert bool((inputs.grad.abs().sum(-1) > 0).all())
