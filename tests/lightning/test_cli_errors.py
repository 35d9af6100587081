"""The command reports a user's mistake in one or two lines, exit code 2; --debug shows all.

Each case below failed before as a long traceback or a page of usage (the issue counted 14
frames for a missing data root, ~10 KB for a missing ppca_root, 158 lines for `hessian: exakt`,
~45 lines of usage for a misspelt key); the catalogue (tests/test_errors_catalogue.py) checks
the error types and messages of every bad input, this file the command's output.
"""

import os
import subprocess
import sys

import pytest

from lightning_energy.cli import BENCHMARKS, DEBUG_ENV, main
from lightning_energy.errors import ConfigurationError
from tests.lightning.conftest import CPU_DEBUG, REPO, TOY

HESSIAN = "--model.init_args.layer.init_args.adjoint.init_args.hessian"


def fail(capsys, *argv):
    """Run main(argv), expect exit code 2; return stderr's own lines (not Lightning's logging)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()


def test_constructor_error_is_one_line_naming_the_key(tmp_path, capsys):
    """Catches: the 158-line chain of jsonargparse "Does not validate" wrappers."""
    err = fail(capsys, "fit", "--config", TOY, "--config", CPU_DEBUG, HESSIAN, "exakt",
               "--trainer.default_root_dir", str(tmp_path))
    assert len(err) == 2
    assert err[0] == ("error: ConfigurationError: model.init_args.layer.init_args.adjoint "
                      "(ImplicitAdjoint): Expected `hessian` to be one of ('exact', "
                      "'gauss_newton', 'cg'), got 'exakt'.")
    assert "--debug" in err[1]
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_misspelt_key_in_a_config_file_is_named(tmp_path, capsys):
    """Catches: ~45 lines of usage printed before the one naming the key."""
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("trainer:\n  max_epoks: 2\n")
    err = fail(capsys, "fit", "--config", TOY, "--config", CPU_DEBUG, "--config", str(recipe))
    assert len(err) == 2
    assert "does not accept option 'trainer.max_epoks'" in err[0]
    assert "lightning-energy fit --help" in err[1]


def test_misspelt_class_path_and_argument(capsys):
    """Catches: the parser's nested Union message (Subtypes, Given value: Namespace(…))."""
    err = fail(capsys, "fit", "--config", TOY, "--config", CPU_DEBUG,
               "--model.init_args.layer.init_args.solver", "lightning_energy.Newtn")
    assert len(err) == 2
    assert "solver" in err[0]
    assert "Newtn" in err[0]
    err = fail(capsys, "fit", "--config", TOY, "--config", CPU_DEBUG,
               "--model.init_args.energy_lrr", "0.1")
    assert err[0] == ("error: Parser key \"model\": Problem with given class_path "
                      "'lightning_energy.tasks.RobustMeanTask': Option 'energy_lrr' is not "
                      "accepted")


def test_debug_flag_and_variable_show_the_exception(monkeypatch):
    """Catches: a --debug that is not honoured, or passed on to the parser as an option."""
    argv = ["fit", "--config", TOY, "--config", CPU_DEBUG, HESSIAN, "exakt"]
    with pytest.raises(ConfigurationError, match="hessian") as info:
        main([*argv, "--debug"])
    assert isinstance(info.value.__cause__, ValueError)  # the constructor's own exception
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ConfigurationError):
        main(argv)


def test_unknown_benchmark_is_named(capsys):
    """Catches: `bench foo` printing only a usage line."""
    err = fail(capsys, "bench", "foo")
    names = ", ".join(BENCHMARKS)  # every suite, as the command knows them
    assert {"adjoints", "pose", "tracking", "scaling", "sequence"} <= set(BENCHMARKS)
    assert err[-1] == f"error: expected a benchmark name ({names}), got 'foo'."
    main(["bench", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in BENCHMARKS)


def test_help_lists_every_command_under_the_command_name(capsys):
    """Catches: `--help` without bench and cv, and `usage: __main__.py` under python -m."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lightning-energy ")
    for command in ("fit", "validate", "test", "predict", "lightning-energy cv",
                    "lightning-energy bench"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["cv", "--help"])  # the cv dispatch still reaches crossval's own parser
    assert "usage: lightning-energy cv" in capsys.readouterr().out


def test_process_prints_one_error_line_and_no_traceback(tmp_path):
    """Catches: a traceback or usage page reaching the terminal of `python -m lightning_energy`."""
    cmd = [sys.executable, "-m", "lightning_energy", "fit", "--config", TOY, "--config",
           CPU_DEBUG, "--data", "lightning_energy.datamodules.tracking.TrackingDataModule",
           "--data.root", str(tmp_path / "nowhere"), "--trainer.default_root_dir",
           str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(DEBUG_ENV, None)
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: DatasetNotFoundError: No OTB-format tracking data at "
                      f"'{tmp_path / 'nowhere'}' (resolved to {tmp_path / 'nowhere'}): expected "
                      "groundtruth/<seq>.txt and results/<tracker>/<seq>.txt; set `root` to the "
                      "folder holding them (default ../shared/data/otb100_tracker_fusion)."]
    assert len(result.stderr.splitlines()) <= 6  # Lightning's seed/device lines, then ours
    assert not (tmp_path / "run").exists()
