"""The ``lightning-energy`` command: ``bench …`` benchmarks."""

from __future__ import annotations

import sys


def main(args: list[str] | None = None) -> None:
    """Run ``lightning-energy`` with ``args`` (default: the command line)."""
    args = list(sys.argv[1:] if args is None else args)
    if args[:2] == ["bench", "adjoints"]:
        from lightning_energy.bench.adjoints import main as bench_adjoints

        bench_adjoints(args[2:])
        return
    raise SystemExit("usage: lightning-energy bench adjoints [options]")
