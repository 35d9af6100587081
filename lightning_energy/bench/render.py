"""``lightning-energy bench render``: how fast the person renderer draws crops, by crop size.

Renders every view of ``--frames`` frames (:class:`~lightning_energy.datasets.RenderedPoseFrames`
over synthetic poses and cameras, 4 views each) in one thread, as one ``DataLoader`` worker
does (PyTorch gives each worker one thread), after one warm-up frame. The rate is what one
worker supplies; ``num_workers`` workers on free cores supply that many times more, and a
training step that needs more crops per second than that waits for data.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from lightning_energy.datasets.pose_images import RenderedPoseFrames
from lightning_energy.datasets.pose_render import RenderConfig
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``bench render``."""
    parser = argparse.ArgumentParser(prog="lightning-energy bench render")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256],
                        help="crop sides in pixels")
    parser.add_argument("--frames", type=int, default=32, help="frames (4 views each) per size")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (a DataLoader worker has 1)")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    return parser


def measure(size: int, frames: int) -> dict[str, Any]:
    """Render every view of ``frames`` synthetic frames at ``size`` px; the rate."""
    dataset = RenderedPoseFrames(generate_synthetic_poses(frames + 1, seed=0),
                                 RenderConfig(image_size=size))
    dataset[frames]  # warm-up: first calls allocate and load kernels
    start = time.perf_counter()
    views = sum(int(dataset[i].images.shape[1]) for i in range(frames))
    seconds = time.perf_counter() - start
    return {"image_size": size, "crops": views, "seconds": seconds,
            "crops_per_s": views / seconds, "ms_per_crop": 1000 * seconds / views,
            "threads": torch.get_num_threads()}


def format_table(records: list[dict[str, Any]]) -> str:
    """Plain-text table of the records."""
    head = f"{'size px':>8}{'crops':>7}{'crops/s':>10}{'ms/crop':>10}{'threads':>9}"
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(f"{r['image_size']:>8}{r['crops']:>7}{r['crops_per_s']:>10.1f}"
                     f"{r['ms_per_crop']:>10.2f}{r['threads']:>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Entry point: parse, run; returns the table (or JSON) that the command prints."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.frames < 1 or min(args.sizes) < 8:
        parser.error(f"expected --frames ≥ 1 and --sizes ≥ 8 px, got {args.frames} and "
                     f"{args.sizes}")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        records = [measure(size, args.frames) for size in args.sizes]
    finally:
        torch.set_num_threads(threads)
    return json.dumps(records, indent=2) if args.format == "json" else format_table(records)
