"""Two gloo processes on CPU, each updating on its own shard, agree with one process on all data."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics import Metric

from lightning_energy.metrics import (
    MPJPE,
    PAMPJPE,
    KeypointError,
    LeftRightSwapRate,
    MeanIoU,
    PrecisionAtPixels,
    SolverConvergence,
    SuccessAUC,
    SystematicOffset,
)

WORLD_SIZE = 2
# Uneven shards: rank 0 sees batches 0 and 1, rank 1 sees batch 2 only.
SHARDS = {0: (0, 1), 1: (2,)}
TIMEOUT_S = 60.0


def make_metrics() -> dict[str, Metric]:
    return {
        "mpjpe": MPJPE(),
        "pa_mpjpe": PAMPJPE(),
        "offset": SystematicOffset(),
        "offset_remainder": SystematicOffset(remainder=True),
        "success_seq": SuccessAUC(),
        "success_frame": SuccessAUC(average="frame"),
        "precision": PrecisionAtPixels(threshold=15.0),
        "iou_frame": MeanIoU(average="frame", skip_first=True),
        "solver": SolverConvergence(),
        "keypoint_error": KeypointError(),
        "swap_rate": LeftRightSwapRate(),
    }


def make_batch(index: int) -> dict[str, tuple[torch.Tensor, ...]]:
    """Batch ``index`` of the data set; batch sizes differ (3, 5, 2 sequences / poses)."""
    gen = torch.Generator().manual_seed(100 + index)
    size = (3, 5, 2)[index]
    target = 200.0 * torch.randn(size, 17, 3, generator=gen, dtype=torch.float64)
    pred = target + 25.0 * torch.randn(size, 17, 3, generator=gen, dtype=torch.float64)
    boxes = torch.cat(
        [
            200 * torch.rand(size, 9, 2, generator=gen),
            10 + 40 * torch.rand(size, 9, 2, generator=gen),
        ],
        -1,
    )
    shifted = boxes + 12.0 * torch.randn(boxes.shape, generator=gen)
    valid = torch.rand(size, 9, generator=gen) > 0.2
    track = (shifted.double(), boxes.double(), valid)
    solver: tuple[torch.Tensor, ...] = (
        torch.rand(size, generator=gen) > 0.4,
        torch.randint(1, 30 + 20 * index, (size,), generator=gen),
    )
    if index != 1:  # one batch without gradient norms
        solver = (*solver, torch.rand(size, generator=gen, dtype=torch.float64))
    pixels = target[..., :2] / 4  # noisy enough for a few left/right swaps
    noisy = pixels + 30.0 * torch.randn(pixels.shape, generator=gen, dtype=torch.float64)
    keypoints = (noisy, pixels, torch.rand(size, 17, generator=gen) > 0.2)
    return {"pose": (pred, target), "track": track, "solver": solver, "keypoints": keypoints}


def feed(metric_name: str, metric: Metric, batch: dict[str, tuple[torch.Tensor, ...]]) -> None:
    if metric_name in ("mpjpe", "pa_mpjpe", "offset", "offset_remainder"):
        metric.update(*batch["pose"])
    elif metric_name == "solver":
        metric.update(*batch["solver"])
    elif metric_name in ("keypoint_error", "swap_rate"):
        metric.update(*batch["keypoints"])
    else:
        metric.update(*batch["track"])


def run_metrics(batch_indices: tuple[int, ...]) -> dict[str, object]:
    metrics = make_metrics()
    for index in batch_indices:
        batch = make_batch(index)
        for name, metric in metrics.items():
            feed(name, metric, batch)
    return {name: metric.compute() for name, metric in metrics.items()}


def synced_run(rank: int, port: int) -> dict[str, object]:
    """Join the 2-process gloo group as ``rank``, update on this rank's shard, compute (synced)."""
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=TIMEOUT_S),
    )
    try:
        return run_metrics(SHARDS[rank])
    finally:
        dist.destroy_process_group()


def _child(index: int, port: int, out_dir: str) -> None:
    """Entry point of the spawned process, which plays rank 1 (``index`` is always 0)."""
    torch.set_num_threads(1)
    torch.save(synced_run(index + 1, port), os.path.join(out_dir, "rank1.pt"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.ddp
def test_ddp_compute_equals_single_process(tmp_path: Path) -> None:
    # Two processes: this one is rank 0, a process spawned by torch.multiprocessing is rank 1
    # (spawning both would double the import cost of torch + torchmetrics on 2 cores).
    port = free_port()
    child = mp.start_processes(
        _child, args=(port, str(tmp_path)), nprocs=1, join=False, start_method="spawn"
    )
    try:
        results = {0: synced_run(0, port)}
        assert child.join(timeout=TIMEOUT_S)
    finally:
        for process in child.processes:
            if process.is_alive():
                process.kill()
    results[1] = torch.load(tmp_path / "rank1.pt")
    assert not dist.is_initialized()
    expected = run_metrics((0, 1, 2))
    for rank, got in results.items():
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            torch.testing.assert_close(
                got[name], value, rtol=1e-12, atol=0, msg=f"{name}, rank {rank}"
            )
    # The check can fail: a shard alone gives different values.
    shard_only = run_metrics(SHARDS[0])
    assert shard_only["mpjpe"].item() != pytest.approx(expected["mpjpe"].item(), rel=1e-9)
    for name in ("keypoint_error", "swap_rate"):
        assert shard_only[name].item() != pytest.approx(expected[name].item(), rel=1e-9)
    assert shard_only["solver"]["steps_max"].item() < expected["solver"]["steps_max"].item()
