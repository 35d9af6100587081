"""``python -m studies.assumptions.every_part --out docs/study``: every page of the study.

Runs, in turn, the toys (``studies.assumptions``, parts 1–6), parts 1–3 on the multi-view pose
energy (``.pose``), part 4 (``.pose_stability``), part 5 (``.pose_grid``) and part 6
(``.pose_trajectories``) on the pose recipe, and parts 4 and 6 on tracker fusion
(``.tracking_stability``, ``.tracking_trajectories``): every number and figure under
``docs/study``. About 2.5 hours on
two CPU cores; the pose and tracking parts need the data in ``../shared/data``.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

PARTS = ("studies.assumptions.__main__", "studies.assumptions.pose",
         "studies.assumptions.pose_stability", "studies.assumptions.pose_grid",
         "studies.assumptions.pose_trajectories", "studies.assumptions.tracking_stability",
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
