"""The ``lightning-energy`` command: a thin ``LightningCLI`` plus ``cv`` and ``bench``.

``lightning-energy {fit,validate,test,predict} --config RECIPE [--config OVERLAY …]`` runs any
``EnergyTask`` with any ``LightningDataModule``; built-in classes may be named by their short
name (``RobustMeanTask``), user classes by dotted path. ``lightning-energy cv --config RECIPE
--folds … --out DIR`` cross-validates a recipe with the same classes
(:mod:`lightning_energy.crossval`); ``lightning-energy bench adjoints …`` prints benchmark tables.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch.distributed
from jsonargparse import lazy_instance
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback

# Imported so that short class names resolve in recipes.
import lightning_energy
import lightning_energy.baselines.pose
import lightning_energy.datamodules
import lightning_energy.energies.pose
import lightning_energy.energies.tracking
import lightning_energy.linalg
import lightning_energy.networks
import lightning_energy.networks.tracker
import lightning_energy.solvers
import lightning_energy.tasks  # noqa: F401
from lightning_energy.callbacks import (
    BaselineReport,
    EnergyParameterMonitor,
    RunCheckpoint,
    SolverDiagnostics,
)
from lightning_energy.errors import IncompatibleSolverError
from lightning_energy.loggers import OfflineFirstWandbLogger
from lightning_energy.tasks.base import EnergyTask

BENCHMARKS = ("adjoints",)


class LoggedConfigCallback(SaveConfigCallback):
    """Save the resolved config as ``{default_root_dir}/config.yaml`` and send it to the loggers."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:  # noqa: D102
        config = self.parser.dump(self.config, skip_none=False, format="yaml")
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / self.config_filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(config)
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})


class EnergyCLI(LightningCLI):
    """``LightningCLI`` that names the recipe key when the energy, solver and adjoint clash."""

    def instantiate_classes(self) -> None:  # noqa: D102
        try:
            super().instantiate_classes()
        except (IncompatibleSolverError, ValueError) as err:
            cause = _find_cause(err, IncompatibleSolverError)
            if cause is None:
                raise
            raise SystemExit(f"error: model.init_args.layer: {cause}") from err


def _find_cause(err: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of type ``kind`` in ``err``'s chain (jsonargparse wraps them)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def trainer_defaults() -> dict[str, Any]:
    """The default logger (overridable) and the callbacks every run has (recipes add more)."""
    return {
        "logger": lazy_instance(OfflineFirstWandbLogger),
        "callbacks": [SolverDiagnostics(), EnergyParameterMonitor(), BaselineReport(),
                      RunCheckpoint()],
    }


def main(args: list[str] | None = None) -> None:
    """Run ``lightning-energy`` with ``args`` (default: the command line)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["bench"]:
        _bench(argv[1:])
        return
    if argv[:1] == ["cv"]:
        from lightning_energy.crossval import main as cross_validate

        sys.stdout.write(cross_validate(argv[1:]) + "\n")
        return
    try:
        run_cli(None if args is None else argv)
    finally:
        # A gloo process group left to interpreter exit can abort the process ("terminate
        # called without an active exception") after a successful run: its threads are torn
        # down while still joinable. Lightning does not destroy the group it created.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def run_cli(argv: list[str] | None, run: bool = True) -> EnergyCLI:
    """Build (and by default run) the LightningCLI; returns it (its trainer, model, datamodule).

    ``argv=None`` parses the command line.
    """
    return EnergyCLI(
        EnergyTask,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=LoggedConfigCallback,
        save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
        trainer_defaults=trainer_defaults(),
        args=argv,
        run=run,
        auto_configure_optimizers=False,
    )


def _bench(argv: list[str]) -> None:
    if not argv or argv[0] not in BENCHMARKS:
        raise SystemExit(f"usage: lightning-energy bench {{{','.join(BENCHMARKS)}}} [options]")
    from lightning_energy.bench.adjoints import main as bench_adjoints

    sys.stdout.write(bench_adjoints(argv[1:]) + "\n")
