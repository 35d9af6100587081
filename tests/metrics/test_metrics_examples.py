"""The `Example:` sections of the metric docstrings run and print what they claim."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import lightning_energy.metrics as metrics
from lightning_energy.metrics import _keypoints, convergence, functional, keypoints, pose, tracking


@pytest.mark.parametrize(
    "module", [functional, pose, tracking, convergence, keypoints, _keypoints]
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_public_surface() -> None:
    assert sorted(metrics.__all__) == sorted(
        [
            "MPJPE",
            "PAMPJPE",
            "SuccessAUC",
            "PrecisionAtPixels",
            "MeanIoU",
            "SolverConvergence",
            "mpjpe",
            "pa_mpjpe",
            "success_auc",
            "precision_at_pixels",
            "mean_iou",
            "solver_convergence",
            "KeypointError",
            "LeftRightSwapRate",
            "keypoint_error",
            "left_right_swap_rate",
            "SystematicOffset",
            "systematic_offset",
        ]
    )
    assert all(hasattr(metrics, name) for name in metrics.__all__)
