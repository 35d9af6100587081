"""Timing and memory measurement shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock times are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall-clock milliseconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@contextmanager
def saved_tensor_bytes() -> Any:
    """Count the distinct storage bytes autograd saves for backward inside the block.

    Yields a one-element list holding the running total. This is the memory a graph keeps alive
    until backward, the part that grows with unrolled solver steps.
    """
    total = [0]
    seen: set[int] = set()

    def pack(t: Tensor) -> Tensor:
        try:
            key, size = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
        except RuntimeError:  # functorch-wrapped tensors have no accessible storage
            key, size = id(t), t.numel() * t.element_size()
        if key not in seen:
            seen.add(key)
            total[0] += size
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total
