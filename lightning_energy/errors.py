"""Exceptions raised by lightning_energy.

Numerical failure of an inner solve is *data* (a status code in
:class:`~lightning_energy.Solution`); misconfiguration and malformed input are exceptions,
raised as early as possible.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class ShapeError(ValueError):
    """A tensor argument has the wrong shape, dtype or contents.

    Example:
        >>> import torch, lightning_energy as le
        >>> layer = le.EnergyLayer(le.QuadraticEnergy(3), le.Newton())
        >>> try:
        ...     layer(torch.zeros(8, 3, dtype=torch.int64))
        ... except le.ShapeError:
        ...     print("rejected")
        rejected
    """


class IncompatibleSolverError(TypeError):
    """A solver or adjoint was combined with an energy it cannot handle.

    Example:
        >>> import lightning_energy as le
        >>> try:  # Levenberg–Marquardt needs residuals: a LeastSquaresEnergy
        ...     le.EnergyLayer(le.QuadraticEnergy(3), le.LevenbergMarquardt())
        ... except le.IncompatibleSolverError:
        ...     print("rejected when the layer is built")
        rejected when the layer is built
    """


class DatasetNotFoundError(FileNotFoundError):
    """A dataset root does not exist or lacks the expected files.

    Example:
        >>> import lightning_energy as le
        >>> isinstance(le.DatasetNotFoundError("no data/h36m"), FileNotFoundError)
        True
    """


class SolverError(RuntimeError):
    """A solve did not converge and the layer's policy is ``nonconverged="raise"``.

    Example:
        >>> import torch, lightning_energy as le
        >>> layer = le.EnergyLayer(le.QuadraticEnergy(3), le.GradientDescent(max_steps=1),
        ...                        nonconverged="raise")
        >>> try:
        ...     layer(torch.randn(4, 3))
        ... except le.SolverError:
        ...     print("one step is not enough")
        one step is not enough
    """


class ConfigurationError(ValueError):
    """A recipe or command-line value was rejected by the class it configures.

    Raised by ``lightning-energy`` (:func:`lightning_energy.cli.run_cli`) with the recipe key in
    front of the constructor's own message; the constructor's exception is its ``__cause__``.
    """


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


@contextmanager
def reading(path: str | Path, expected: str) -> Iterator[None]:
    """Re-raise a failure to parse ``path`` as :class:`DatasetFormatError` naming the file.

    A truncated ``.npz`` raises ``BadZipFile``, a cut ``.json`` ``JSONDecodeError``, a cut
    ``.h5`` ``OSError``, a file missing a field ``KeyError`` — none of them say which file.
    A missing file stays a :class:`FileNotFoundError` (the readers check for it first).

    Args:
        path: The file being read.
        expected: What it should hold, for the message (e.g. ``"a JSON object with `subjects`"``).
    """
    try:
        yield
    except (FileNotFoundError, DatasetFormatError):
        raise
    except (OSError, ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile,
            csv.Error) as err:
        raise DatasetFormatError(
            f"Cannot read {path}: expected {expected}, got {type(err).__name__}: {err}. The file "
            "may be truncated or corrupt: copy it again.") from err
