"""Recipe mistakes fail before training, naming the key and what was expected."""

import pytest

from lightning_energy.cli import run_cli
from tests.lightning.conftest import CPU_DEBUG, TOY


def test_misspelt_class_path(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_cli(["fit", "--config", TOY, "--config", CPU_DEBUG,
                 "--model.init_args.layer.init_args.solver", "lightning_energy.Newtn"])
    err = capsys.readouterr().err
    assert "solver" in err
    assert "Newtn" in err


def test_energy_solver_mismatch(tmp_path):
    with pytest.raises(SystemExit, match=r"model.init_args.layer: LevenbergMarquardt needs a "
                       r"LeastSquaresEnergy"):
        run_cli(["fit", "--config", TOY, "--config", CPU_DEBUG,
                 "--model.init_args.layer.init_args.solver", "LevenbergMarquardt"])


def test_missing_data_root(tmp_path):
    from lightning_energy.errors import DatasetNotFoundError

    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        run_cli(["fit", "--config", TOY, "--config", CPU_DEBUG,
                 "--data", "lightning_energy.datamodules.tracking.TrackingDataModule",
                 "--data.root", str(missing), "--trainer.default_root_dir", str(tmp_path)])
