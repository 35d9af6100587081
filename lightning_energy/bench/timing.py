"""Timing and memory measurement shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
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


def graph_saved_bytes(output: Tensor) -> int:
    """Distinct storage bytes the autograd graph behind ``output`` keeps for backward.

    Walks the graph from ``output.grad_fn`` and counts every saved tensor (``_saved_*``
    attributes of built-in nodes, ``saved_tensors`` of custom functions) once. This is the memory a
    graph keeps alive until backward, the part that grows with unrolled solver steps.
    """
    seen_nodes: set[int] = set()
    seen_storage: set[int] = set()
    total = 0
    stack = [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        for tensor in _saved(node):
            try:
                key, size = tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes()
            except RuntimeError:  # functorch-wrapped: count its elements
                key, size = id(tensor), tensor.numel() * tensor.element_size()
            if key not in seen_storage:
                seen_storage.add(key)
                total += size
        stack.extend(fn for fn, _ in node.next_functions)
    return total


def _saved(node: Any) -> list[Tensor]:
    tensors: list[Tensor] = []
    for name in dir(node):
        if not (name.startswith("_saved_") or name == "saved_tensors"):
            continue
        try:
            value = getattr(node, name)
        except RuntimeError:  # freed or not accessible
            continue
        values = value if isinstance(value, tuple | list) else (value,)
        tensors.extend(v for v in values if isinstance(v, Tensor))
    return tensors
