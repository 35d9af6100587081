"""The ``lightning-energy`` command: a thin ``LightningCLI`` plus ``cv`` and ``bench``.

``lightning-energy {fit,validate,test,predict} --config RECIPE [--config OVERLAY …]`` runs any
``LightningModule`` (an ``EnergyTask`` or a network's own task such as ``KeypointTask``) with any
``LightningDataModule``; built-in classes may be named by their short
name (``RobustMeanTask``), user classes by dotted path. ``lightning-energy cv --config RECIPE
--folds … --out DIR`` cross-validates a recipe with the same classes
(:mod:`lightning_energy.crossval`); ``lightning-energy bench adjoints …`` prints benchmark tables.

A mistake of the user's (a misspelt key, a value a constructor rejects, a missing dataset or
checkpoint, inputs of the wrong shape) ends the command with one or two lines on stderr that
name the key or file, what was expected and what came, and exit code 2; ``--debug`` (or
``LIGHTNING_ENERGY_DEBUG=1``) shows the full traceback instead. See docs/errors.md.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import pytorch_lightning as pl
import torch.distributed
import yaml
from jsonargparse import ArgumentError, DefaultHelpFormatter, lazy_instance
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
from lightning_energy.errors import (
    CheckpointNotFoundError,
    ConfigurationError,
    DatasetFormatError,
    DatasetNotFoundError,
    IncompatibleSolverError,
    ShapeError,
    SolverError,
)
from lightning_energy.loggers import OfflineFirstWandbLogger

DEBUG_ENV = "LIGHTNING_ENERGY_DEBUG"
"""Set to 1 for full tracebacks instead of one-line errors (like ``--debug``)."""
USER_ERRORS = (ArgumentError, ConfigurationError, CheckpointNotFoundError, DatasetFormatError,
               DatasetNotFoundError, IncompatibleSolverError, ShapeError, SolverError)
"""What ``main`` reports in a line or two: mistakes in the command, recipe, data or inputs."""
BENCHMARKS = {
    "adjoints": "speed and memory of the adjoints (docs/benchmarks.md)",
    "pose": "a training step of the multi-view pose energy, optionally against Theseus",
    "tracking": "one long track fused and differentiated, by linear solver",
    "scaling": "the implicit backward's cost as the variables (or energy parameters) grow",
    "sequence": "a sequence energy's block-arrow solve and backward against dense, as T grows",
    "render": "crops per second of the person renderer (end-to-end pose), by crop size",
}
PROG = "lightning-energy"
EPILOG = f"""other commands:
  {PROG} cv --config RECIPE --folds F … --out DIR  cross-validate a recipe (cv --help)
  {PROG} bench {{{",".join(BENCHMARKS)}}} [options]               benchmark tables (bench --help)

Mistakes are reported in a line or two; --debug (or {DEBUG_ENV}=1) shows full tracebacks."""


class _HelpFormatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help, with the epilog's lines kept as written."""


class LoggedConfigCallback(SaveConfigCallback):
    """Save the resolved config as ``{default_root_dir}/config.yaml`` and send it to the loggers.

    The loggers get it as flat hyperparameters keyed like the command line
    (``model.init_args.layer.init_args.adjoint.init_args.damping``), so runs can be filtered and
    grouped by any setting.
    """

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:  # noqa: D102
        config = self.parser.dump(self.config, skip_none=False, format="yaml")
        path = Path(trainer.default_root_dir) / self.config_filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config)
        for logger in trainer.loggers:
            logger.log_hyperparams(flatten(yaml.safe_load(config)))


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class EnergyCLI(LightningCLI):
    """``LightningCLI`` whose configuration errors name the recipe key; ``predict`` reports."""

    def instantiate_classes(self) -> None:  # noqa: D102
        try:
            super().instantiate_classes()
        except Exception as err:
            # A constructor rejected a value: jsonargparse buries its message under one
            # "Does not validate against any of the Union subtypes" per level of nesting.
            config = self.config.get(str(self.subcommand), self.config)
            raise config_error(err, config) from err
        for logger in self.trainer.loggers:
            if isinstance(logger, OfflineFirstWandbLogger):
                logger.default_save_dir(self.trainer.default_root_dir)

    def predict(self, **kwargs: Any) -> None:
        """``trainer.predict``, then one line on what came out and how to keep it.

        Prediction logs nothing, so it runs without loggers (the default wandb logger would
        otherwise start an empty run to hold the hyperparameters).
        """
        self.trainer.loggers = []
        predictions = self.trainer.predict(**kwargs)
        if self.trainer.is_global_zero:
            sys.stdout.write(predict_summary(predictions) + "\n")


def predict_summary(predictions: Any) -> str:
    """One line: samples predicted and solves converged (``predictions``: per-batch Solutions)."""
    hint = ("add a pytorch_lightning.callbacks.BasePredictionWriter to trainer.callbacks to "
            "save them")
    converged = [getattr(p, "converged", None) for p in predictions or []]
    flags = [c for c in converged if c is not None]
    if not flags:
        return f"predict: done; {hint}."
    done = torch.cat([c.flatten().cpu() for c in flags])
    return (f"predict: {done.numel()} samples in {len(flags)} batches, "
            f"{float(done.float().mean()):.1%} of the solves converged; {hint}.")


def trainer_defaults() -> dict[str, Any]:
    """The default logger (overridable) and the callbacks every run has (recipes add more)."""
    return {
        "logger": lazy_instance(OfflineFirstWandbLogger),
        "callbacks": [SolverDiagnostics(), EnergyParameterMonitor(), BaselineReport(),
                      RunCheckpoint()],
    }


def main(args: list[str] | None = None) -> None:
    """Run ``lightning-energy`` with ``args`` (default: the command line).

    Mistakes of the user's end in ``SystemExit(2)`` after one or two lines on stderr, unless
    ``--debug`` is among ``args`` or ``LIGHTNING_ENERGY_DEBUG`` is set (then they propagate).
    """
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if args is None:
        sys.argv[1:] = argv  # LightningCLI reads the command line itself (and warns otherwise)
    quiet_known_noise()
    try:
        _dispatch(argv, None if args is None else argv)
    except Exception as err:
        if debug or not isinstance(err, USER_ERRORS):
            raise
        report_error(err, argv)
        raise SystemExit(2) from None
    finally:
        # A gloo process group left to interpreter exit can abort the process ("terminate
        # called without an active exception") after a successful run: its threads are torn
        # down while still joinable. Lightning does not destroy the group it created.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _dispatch(argv: list[str], cli_args: list[str] | None) -> None:
    """Run a command; ``cli_args`` is what LightningCLI gets (None: it reads ``sys.argv``)."""
    if argv[:1] == ["bench"]:
        _bench(argv[1:])
    elif argv[:1] == ["cv"]:
        from lightning_energy.crossval import main as cross_validate

        sys.stdout.write(cross_validate(argv[1:]) + "\n")
    else:
        run_cli(cli_args)


def run_cli(argv: list[str] | None, run: bool = True) -> EnergyCLI:
    """Build (and by default run) the LightningCLI; returns it (its trainer, model, datamodule).

    ``argv=None`` parses the command line. A key the parser does not accept raises
    ``jsonargparse.ArgumentError``; a value a constructor rejects raises that constructor's
    exception with the recipe key in front of its message.
    """
    quiet_known_noise()
    return EnergyCLI(
        # Any LightningModule: the energy tasks, and those that train their networks alone
        # (``KeypointTask``, stage 1 of end-to-end pose training).
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=LoggedConfigCallback,
        save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
        trainer_defaults=trainer_defaults(),
        parser_kwargs={"prog": PROG, "epilog": EPILOG, "formatter_class": _HelpFormatter,
                       "description": "Learn continuous energy functions end to end.",
                       "exit_on_error": False},
        args=argv,
        run=run,
        auto_configure_optimizers=False,
    )


def _bench(argv: list[str]) -> None:
    names = ", ".join(BENCHMARKS)
    usage = f"usage: {PROG} bench {{{','.join(BENCHMARKS)}}} [options]  ({PROG} bench NAME --help)"
    if argv[:1] in (["--help"], ["-h"]):
        lines = [usage, "", "benchmarks:"] + [f"  {k:<10} {v}" for k, v in BENCHMARKS.items()]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    if not argv or argv[0] not in BENCHMARKS:
        got = repr(argv[0]) if argv else "nothing"
        sys.stderr.write(f"{usage}\nerror: expected a benchmark name ({names}), got {got}.\n")
        raise SystemExit(2)
    # Each suite is the module of its name: loaded on demand, as most runs never bench.
    suite = importlib.import_module(f"lightning_energy.bench.{argv[0]}")
    sys.stdout.write(suite.main(argv[1:]) + "\n")



# ---------------------------------------------------------------------------------- errors


def report_error(err: BaseException, argv: list[str]) -> None:
    """Write ``err`` as one or two lines on stderr (what ``main`` does with USER_ERRORS)."""
    if isinstance(err, ArgumentError):
        command = " ".join([PROG, *[a for a in argv[:1] if not a.startswith("-")]])
        sys.stderr.write(f"error: {condense(str(err))}\n`{command} --help` lists the accepted "
                         f"options; --debug shows the parser's full message.\n")
        return
    sys.stderr.write(f"error: {type(err).__name__}: {err}\n(--debug or {DEBUG_ENV}=1 shows the "
                     "traceback; docs/errors.md says what to do)\n")


_NOISE = re.compile(r"^(Does not validate against any of the Union subtypes|Subtypes:|Errors:|"
                    r"Given value type:|Given value: .*(Namespace|NestedArg)\(|"
                    r"- Expected a <class 'NoneType'>)")


def condense(message: str) -> str:
    """A nested jsonargparse error on one line: the key, the class and what was wrong."""
    lines = [line.strip() for line in message.splitlines()]
    kept = [line.removeprefix("- ") for line in lines if line and not _NOISE.match(line)]
    return " ".join(kept)


def config_error(err: Exception, config: Any) -> Exception:
    """The exception a constructor raised inside ``err``, with its recipe key in front.

    Library errors keep their type; anything else becomes :class:`ConfigurationError`.
    """
    cause = _constructor_exception(err)
    where = _config_key(_constructed_class(cause), config)
    message = f"{where}: {cause}" if where else str(cause)
    library = (DatasetNotFoundError, DatasetFormatError, IncompatibleSolverError, ShapeError)
    if isinstance(cause, library):
        return type(cause)(message)
    return ConfigurationError(message)


def _constructor_exception(err: BaseException) -> BaseException:
    """The first exception in ``err``'s chain that jsonargparse did not raise (it wraps them)."""
    seen: BaseException = err
    while _raised_in(seen, "jsonargparse") and (seen.__cause__ or seen.__context__):
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return seen


def _raised_in(err: BaseException, package: str) -> bool:
    tb: TracebackType | None = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith(package)


def _constructed_class(err: BaseException) -> type | None:
    """The class whose ``__init__`` raised ``err`` (the outermost ``__init__`` on its traceback)."""
    tb = err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "__init__" and "self" in frame.f_locals:
            return type(frame.f_locals["self"])
        tb = tb.tb_next
    return None


def _config_key(cls: type | None, config: Any) -> str:
    """``"model.init_args.layer.init_args.adjoint (ImplicitAdjoint)"`` for ``cls`` in ``config``."""
    if cls is None:
        return ""
    if issubclass(cls, pl.Trainer):
        return "trainer"
    name = cls.__name__
    for key, value in config.items():
        if key.endswith(".class_path") and isinstance(value, str) and (
                value == name or value.endswith(f".{name}")):
            return f"{key.removesuffix('.class_path')} ({name})"
    return name


# ----------------------------------------------------------------------------------- noise

_TIP = "litlogger"


class _DropTip(logging.Filter):
    """Drop Lightning's advertisement for its LitLogger, printed by every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _TIP not in str(record.msg)


_DROP_TIP = _DropTip()


def quiet_known_noise() -> None:
    """Silence the two messages every run printed that say nothing about the run."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DROP_TIP)  # addFilter ignores a filter already there
    # Lightning 2.6's CombinedLoader builds torch's deprecated LeafSpec once per batch (torch
    # >= 2.10 deprecates it); nothing in lightning_energy calls it, so silence exactly that one.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)
