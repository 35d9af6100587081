"""Where a training step's time goes: operator, kernel and synchronisation counts of one step.

``--profile`` (``bench adjoints``) runs one forward + backward of each row under
:mod:`torch.profiler` after the timed runs and records:

- ``ops``: top-level ATen operator calls. Each costs Python and dispatcher time on any device, so
  for small problems they bound the step from below; on a GPU most also launch a kernel (views and
  other metadata operators launch none);
- ``kernels``: kernels the GPU ran (CUDA only; memory copies and fills excluded);
- ``syncs``: host synchronisations (``cudaStreamSynchronize``, ``cudaDeviceSynchronize``,
  ``cudaEventSynchronize``; CUDA only), e.g. the solver loop's once-per-step convergence check;
- ``top``: the operators or kernels with the most self time on the device (CPU time on a CPU).

The profiler's own overhead inflates the times in ``top``; the counts are exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.profiler import ProfilerActivity, profile

from lightning_energy.bench.timing import synchronize

SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
_NOT_KERNELS = ("Memcpy", "Memset", "memcpy", "memset")


def profile_step(loss_fn: Callable[[], Tensor], device: torch.device, top: int = 5
                 ) -> dict[str, Any]:
    """Counts (see the module docstring) for one ``loss_fn().backward()`` on ``device``."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    synchronize(device)
    with profile(activities=activities) as prof:
        loss_fn().backward()
        synchronize(device)
    events = prof.events()
    ops = sum(1 for e in events if e.name.startswith("aten::") and not _under_aten(e))
    record: dict[str, Any] = {"ops": ops}
    if cuda:
        on_device = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        record["kernels"] = sum(1 for e in on_device if not e.name.startswith(_NOT_KERNELS))
        record["syncs"] = sum(1 for e in events if e.name in SYNC_CALLS)
    averages = sorted(prof.key_averages(), key=lambda e: _self_time(e, cuda), reverse=True)
    record["top"] = [{"name": e.key[:80], "calls": e.count, "ms": _self_time(e, cuda) / 1e3}
                     for e in averages[:top] if _self_time(e, cuda) > 0]
    return record


def _self_time(event: Any, cuda: bool) -> float:
    """Self time in µs: on the device (CUDA) or on the CPU."""
    if not cuda:
        return float(event.self_cpu_time_total)
    device = getattr(event, "self_device_time_total", None)  # torch >= 2.4
    return float(event.self_cuda_time_total if device is None else device)


def _under_aten(event: Any) -> bool:
    """Whether ``event`` runs inside another ATen operator (counted there, not on its own)."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


def format_profile(label: str, record: dict[str, Any]) -> str:
    """One row's profile as text lines: the counts, then the top operators."""
    counts = [f"{record['ops']} ops"]
    if "kernels" in record:
        counts += [f"{record['kernels']} kernels", f"{record['syncs']} host syncs"]
    lines = [f"{label}: " + ", ".join(counts)]
    lines += [f"    {t['ms']:9.2f} ms  {t['calls']:6d}×  {t['name']}" for t in record["top"]]
    return "\n".join(lines)
