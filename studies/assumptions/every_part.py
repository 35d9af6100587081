"""``python -m studies.assumptions.every_part --out docs/study``: every page of the study.

Runs, in turn, the toys (``studies.assumptions``, parts 1–6), then on the multi-view pose
recipe parts 1–3 (``.pose``), 4 (``.pose_stability``), 5 (``.pose_grid``) and 6
(``.pose_trajectories``), and on tracker fusion parts 1–3 (``.tracking``), 4
(``.tracking_stability``), 5 (``.tracking_grid``) and 6 (``.tracking_trajectories``): every
number and figure under ``docs/study``. About 3 hours on two CPU cores (the drivers' own run
times added up; never run as one command); the pose and tracking parts need the data in
``../shared/data`` and the parts 1–3 drivers the recipes' fold models (``--ckpt``).
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

PARTS = ("studies.assumptions.__main__", "studies.assumptions.pose",
         "studies.assumptions.pose_stability", "studies.assumptions.pose_grid",
         "studies.assumptions.pose_trajectories", "studies.assumptions.tracking",
         "studies.assumptions.tracking_stability", "studies.assumptions.tracking_grid",
         "studies.assumptions.tracking_trajectories")
"""The drivers, each with ``main(argv)`` taking ``--out``."""


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run every driver of :data:`PARTS` into ``--out``; the seconds each took."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/study"))
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    args = parser.parse_args(argv)
    seconds = {}
    for name in args.parts:
        start = time.perf_counter()
        importlib.import_module(name).main(["--out", str(args.out)])
        seconds[name] = time.perf_counter() - start
        print(f"{name}: {seconds[name]:.0f} s", flush=True)
    return seconds


if __name__ == "__main__":
    main()
