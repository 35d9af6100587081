"""The mixed-precision policy: a network may run in half precision, a solve never does.

A solve needs the accuracy its tolerance names: bfloat16 keeps two to three significant decimal
digits and float16 three to four, so ‖∇ₓE‖ stalls orders of magnitude above any useful ``tol``
and every sample would end masked. Autocast (``torch.autocast``, Lightning's
``precision="bf16-mixed"`` / ``"16-mixed"``) would round the energy's matrix products to half
precision even in a float32 solve, so solves run with it switched off, and so does the implicit
adjoint's backward pass; float64 is never autocast, float32 would be. The unrolled and truncated
adjoints' backward passes run through autograd's recorded steps, which autocast reaches when
``backward()`` is called inside the autocast block (Lightning calls it outside).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

HALF = (torch.float16, torch.bfloat16)


def full_precision(dtype: torch.dtype) -> torch.dtype:
    """``dtype``, or float32 for a half-precision dtype (a solve's default dtype)."""
    return torch.float32 if dtype in HALF else dtype


def _has_autocast(device_type: str) -> bool:
    available = getattr(torch.amp, "is_autocast_available", None)  # torch >= 2.4
    return available(device_type) if available is not None else device_type in ("cpu", "cuda")


@contextlib.contextmanager
def no_autocast(device: torch.device) -> Iterator[None]:
    """Switch autocast off on ``device``'s type for the enclosed block (no-op where none exists)."""
    if not _has_autocast(device.type):
        yield
        return
    with torch.autocast(device.type, enabled=False):
        yield
