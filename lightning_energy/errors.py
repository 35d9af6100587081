"""Exceptions raised by lightning_energy.

Numerical failure of an inner solve is *data* (a status code in
:class:`~lightning_energy.Solution`); misconfiguration and malformed input are exceptions,
raised as early as possible.
"""

from __future__ import annotations

from collections.abc import Sequence


class ShapeError(ValueError):
    """A tensor argument has the wrong shape, dtype or contents."""


class IncompatibleSolverError(TypeError):
    """A solver or adjoint was combined with an energy it cannot handle."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset root does not exist or lacks the expected files."""


class SolverError(RuntimeError):
    """A solve did not converge and the layer's policy is ``nonconverged="raise"``."""


class DatasetFormatError(ValueError):
    """A dataset file exists but cannot be read: truncated, corrupt or in another layout."""


class CheckpointNotFoundError(FileNotFoundError):
    """``ckpt_path="last"`` was asked for, but the run folder holds no ``last.ckpt``."""


def describe(value: object) -> str:
    """Short description of a value for error messages: shape and dtype for tensors."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None:
        return f"{tuple(shape)} ({dtype})"
    return type(value).__name__


def expect_shape(name: str, value: object, expected: Sequence[int | str]) -> None:
    """Raise :class:`ShapeError` unless ``value.shape`` matches ``expected``.

    Args:
        name: Argument name shown in the message.
        value: The tensor to check.
        expected: Sizes; a string entry (e.g. ``"B"``) matches any size.
    """
    shape = getattr(value, "shape", None)
    ok = shape is not None and len(shape) == len(expected)
    if ok and shape is not None:
        ok = all(isinstance(e, str) or int(s) == e for s, e in zip(shape, expected, strict=True))
    if not ok:
        want = ", ".join(str(e) for e in expected)
        raise ShapeError(f"Expected `{name}` of shape ({want}), got {describe(value)}.")
