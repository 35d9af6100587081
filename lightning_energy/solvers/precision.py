"""The mixed-precision policy: a network may run in half precision, a solve never does.

A solve needs the accuracy its tolerance names: bfloat16 keeps about three significant digits and
float16 five, so ‖∇ₓE‖ stalls orders of magnitude above any useful ``tol`` and every sample would
end masked. Autocast (``torch.autocast``, Lightning's ``precision="bf16-mixed"`` / ``"16-mixed"``)
would round the energy's matrix products to half precision even in a float32 solve, so solves and
their backward passes run with it switched off; float64 is never autocast, float32 would be.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

HALF = (torch.float16, torch.bfloat16)


def full_precision(dtype: torch.dtype) -> torch.dtype:
    """``dtype``, or float32 for a half-precision dtype (a solve's default dtype)."""
    return torch.float32 if dtype in HALF else dtype


@contextlib.contextmanager
def no_autocast(device: torch.device) -> Iterator[None]:
    """Switch autocast off on ``device``'s type for the enclosed block (no-op where none exists)."""
    if not torch.amp.is_autocast_available(device.type):
        yield
        return
    with torch.autocast(device.type, enabled=False):
        yield
