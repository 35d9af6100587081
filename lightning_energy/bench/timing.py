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


def time_once(layer: Any, inputs: Any, device: torch.device) -> tuple[Any, float, float, float]:
    """One solve and backward of loss Σ x*², timed once (solves whose step count varies).

    Returns the solution, forward ms, backward ms and the MB the autograd graph keeps for
    backward.
    """
    synchronize(device)
    start = time.perf_counter()
    solution = layer(inputs)
    loss = solution.x.pow(2).sum()
    synchronize(device)
    middle = time.perf_counter()
    memory = graph_saved_bytes(loss) / 2**20
    loss.backward()
    synchronize(device)
    end = time.perf_counter()
    return solution, (middle - start) * 1e3, (end - middle) * 1e3, memory


def time_layer(layer: Any, inputs: Any, device: torch.device,
               repeats: int) -> tuple[float, float, float]:
    """Median forward and backward ms of ``layer(inputs)``, and memory in MB.

    The loss is Σ x*²; forward and backward are each timed on their own after a warm-up round.
    Memory: on CUDA the peak allocated, on CPU what the autograd graph saves for backward.
    """
    forward_times, backward_times = [], []
    for i in range(repeats + 1):  # the first round is a warm-up
        synchronize(device)
        start = time.perf_counter()
        loss = layer(inputs).x.pow(2).sum()
        synchronize(device)
        middle = time.perf_counter()
        loss.backward()
        synchronize(device)
        if i:
            forward_times.append((middle - start) * 1e3)
            backward_times.append((time.perf_counter() - middle) * 1e3)
    return (statistics.median(forward_times), statistics.median(backward_times),
            _memory_mb(layer, inputs, device))


def _memory_mb(layer: Any, inputs: Any, device: torch.device) -> float:
    if device.type == "cuda":
        synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        layer(inputs).x.pow(2).sum().backward()
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    loss = layer(inputs).x.pow(2).sum()
    memory = graph_saved_bytes(loss) / 2**20
    loss.backward()
    return memory
