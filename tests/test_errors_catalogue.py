"""Catalogue of bad inputs: every mistake a user can make gets its error type and a message that
names the argument or file, what was expected and what came; a command that fails leaves no
checkpoint, config or logger run behind as if it had run.

Config-level cases go through the command (`run_cli`, what `lightning-energy` runs; the command's
one-line output is checked in tests/lightning/test_cli_errors.py), the rest through the library.
Every case's name is a row of docs/errors.md, so the table and the code cannot drift apart.
Each case's `catches` says which faulty variant it fails on.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from jsonargparse import ArgumentError

import lightning_energy as le
from lightning_energy.cli import run_cli
from lightning_energy.datasets.h36m import load_h36m, read_cameras
from lightning_energy.datasets.otb import list_sequences, list_trackers
from lightning_energy.datasets.pose_synthetic import generate_synthetic_poses
from lightning_energy.datasets.tracking_batch import TrackingSample, collate_tracking
from lightning_energy.energies.ppca import load_ppca
from lightning_energy.errors import (
    CheckpointNotFoundError,
    ConfigurationError,
    DatasetFormatError,
    DatasetNotFoundError,
)
from tests.datasets.test_pose_h36m import write_tiny_layout
from tests.lightning.conftest import CPU_DEBUG, REPO, TOY

DOC = REPO / "docs" / "errors.md"
OTB_TINY = REPO / "tests" / "fixtures" / "otb_tiny"
POSE = str(REPO / "recipes" / "pose" / "h36m_multiview.yaml")
LAYER = "--model.init_args.layer.init_args."


@dataclasses.dataclass
class Case:
    name: str  # as written in docs/errors.md
    error: type[BaseException]
    run: Callable[[Path], object]  # given an empty folder
    words: Callable[[Path], list[str]]  # the message must hold each
    catches: str
    command: bool = False  # run through the CLI: check that nothing was left behind


def cli(*argv: str) -> Callable[[Path], object]:
    def run(tmp: Path) -> object:
        return run_cli(["fit", "--config", TOY, "--config", CPU_DEBUG,
                        "--trainer.default_root_dir", str(tmp / "run"), *argv])
    return run


# ----------------------------------------------------------------------- files on disk


def truncated(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def h36m(tmp: Path, edit: Callable[[Path], object] | None = None) -> Path:
    root = write_tiny_layout(tmp / "h36m")
    if edit is not None:
        edit(root)
    return root


def zero_focal_length(root: Path) -> None:
    cameras = json.loads((root / "cameras.json").read_text())
    cameras["subjects"]["S1"][1]["f"] = [0.0, 0.0]
    (root / "cameras.json").write_text(json.dumps(cameras))


def drop_column(path: Path, column: str) -> None:
    lines = path.read_text().splitlines()
    index = lines[0].split(",").index(column)
    path.write_text("\n".join(",".join(v for i, v in enumerate(line.split(",")) if i != index)
                              for line in lines) + "\n")


def otb(tmp: Path) -> Path:
    return Path(shutil.copytree(OTB_TINY, tmp / "otb"))


def otb_other_splits(tmp: Path) -> Path:
    root = otb(tmp)
    table = root / "sequences.csv"
    table.write_text(table.read_text().replace(",dev,", ",train,").replace(",test,", ",val,"))
    return root


def tiny_ppca(tmp: Path) -> Path:
    import h5py

    tmp.mkdir(parents=True, exist_ok=True)
    with h5py.File(tmp / "model_parameters.h5", "w") as handle:
        for m in (3, 6, 10):
            handle[f"mu_{m}"] = np.zeros((m, 3, 17))
            handle[f"e_{m}"] = np.zeros((m, 2, 3, 17))
            handle[f"sigma_{m}"] = np.ones((m, 3))
    truncated(tmp / "model_parameters.h5")
    return tmp


# ----------------------------------------------------------------------------- tensors


def quadratic(inputs: torch.Tensor, x0: torch.Tensor | None = None) -> object:
    return le.EnergyLayer(le.QuadraticEnergy(3), le.Newton())(inputs, x0)


def pose_batch(**edits: Callable[[torch.Tensor], torch.Tensor]) -> object:
    batch = generate_synthetic_poses(4, seed=0).to_batch()
    changes = {name: fn(getattr(batch, name).clone()) for name, fn in edits.items()}
    return dataclasses.replace(batch, **changes)


def set_rows(value: float | bool, index: tuple) -> Callable[[torch.Tensor], torch.Tensor]:
    def edit(t: torch.Tensor) -> torch.Tensor:
        t[index] = value
        return t
    return edit


def tracking_batch(every_tracker_missing: bool) -> object:
    boxes = np.tile(np.array([10.0, 10.0, 5.0, 5.0]), (6, 3, 1))
    item = TrackingSample.from_arrays(boxes, boxes[:, 0], "seq")
    empty = TrackingSample.from_arrays(np.full_like(boxes, np.nan), boxes[:, 0], "lost")
    return collate_tracking([item, empty if every_tracker_missing else item])


def nan_at(index: tuple) -> torch.Tensor:
    t = torch.randn(4, 3)
    t[index] = float("nan")
    return t


CASES = [
    # ------------------------------------------------------------------ recipes and the command
    Case("misspelt key in a recipe", ArgumentError,
         lambda tmp: cli("--config", str(_typo(tmp)))(tmp),
         lambda tmp: ["trainer.max_epoks"], "a misspelt key accepted or named after a page of "
         "usage", command=True),
    Case("unknown class name", ArgumentError,
         cli(f"{LAYER}solver", "lightning_energy.Newtn"), lambda tmp: ["solver", "Newtn"],
         "a class path that does not resolve reported without the key", command=True),
    Case("value a constructor rejects", ConfigurationError,
         cli(f"{LAYER}adjoint.init_args.hessian", "exakt"),
         lambda tmp: ["model.init_args.layer.init_args.adjoint (ImplicitAdjoint)", "`hessian`",
                      "'exakt'", "'exact'"],
         "the constructor's message buried in 158 lines of jsonargparse wrappers", command=True),
    Case("solver that needs a least-squares energy", le.IncompatibleSolverError,
         cli(f"{LAYER}solver", "LevenbergMarquardt"),
         lambda tmp: ["model.init_args.layer (EnergyLayer)", "LevenbergMarquardt",
                      "LeastSquaresEnergy", "KernelDensityEnergy"],
         "an incompatible energy/solver reported without the recipe key", command=True),
    Case("solver and adjoint that do not combine", le.IncompatibleSolverError,
         cli(f"{LAYER}adjoint.init_args.hessian", "gauss_newton"),
         lambda tmp: ["model.init_args.layer (EnergyLayer)", "gauss_newton"],
         "a Gauss-Newton adjoint accepted for an energy without residuals", command=True),
    Case("missing data root", DatasetNotFoundError,
         lambda tmp: cli("--data", "lightning_energy.datamodules.tracking.TrackingDataModule",
                         "--data.root", str(tmp / "nowhere"), "--trainer.logger",
                         "lightning_energy.loggers.OfflineFirstWandbLogger")(tmp),
         lambda tmp: [str(tmp / "nowhere"), "`root`"],
         "a missing root found late (after a logger run or config.yaml was written)",
         command=True),
    Case("missing ppca_root", DatasetNotFoundError,
         lambda tmp: run_cli(["fit", "--config", POSE, "--config", CPU_DEBUG,
                              "--trainer.default_root_dir", str(tmp / "run"),
                              "--model.init_args.energy.init_args.ppca_root",
                              str(tmp / "no_ppca")]),
         lambda tmp: ["model.init_args.energy (MultiViewPoseEnergy)",
                      str(tmp / "no_ppca" / "model_parameters.h5")],
         "the file named only inside ~10 KB of chained tracebacks", command=True),
    Case("nothing to resume", CheckpointNotFoundError, cli("--ckpt_path", "last"),
         lambda tmp: [str(tmp / "run" / "checkpoints" / "last.ckpt"), "ckpt_path"],
         "Lightning's warning, then training from scratch", command=True),
    # ------------------------------------------------------------------------- dataset files
    Case("truncated .npz", DatasetFormatError,
         lambda tmp: load_h36m(h36m(tmp, lambda r: truncated(r / "S1" / "Walking.npz")),
                               subjects=["S1"]),
         lambda tmp: [str(tmp / "h36m" / "S1" / "Walking.npz"), "joints2d_sh", "BadZipFile"],
         "BadZipFile without the file's name"),
    Case("truncated cameras.json", DatasetFormatError,
         lambda tmp: read_cameras(h36m(tmp, lambda r: truncated(r / "cameras.json")), ["S1"]),
         lambda tmp: [str(tmp / "h36m" / "cameras.json"), "JSONDecodeError", "subjects"],
         "JSONDecodeError without the file's name"),
    Case("zero focal length in cameras.json", DatasetFormatError,
         lambda tmp: read_cameras(h36m(tmp, zero_focal_length), ["S1"]),
         lambda tmp: [str(tmp / "h36m" / "cameras.json"), "`f`", "S1", "f > 0"],
         "a camera with f = 0 read, to blow up as inf detections later"),
    Case("sequences.csv without a column", DatasetFormatError,
         lambda tmp: load_h36m(h36m(tmp, lambda r: drop_column(r / "sequences.csv",
                                                               "n_frames_stored"))),
         lambda tmp: [str(tmp / "h36m" / "sequences.csv"), "n_frames_stored"],
         "a bare KeyError: 'n_frames_stored'"),
    Case("truncated PPCA .h5", DatasetFormatError, lambda tmp: load_ppca(tiny_ppca(tmp)),
         lambda tmp: [str(tmp / "model_parameters.h5"), "HDF5"],
         "h5py's OSError without the file's name"),
    Case("OTB split values that match no sequence", DatasetNotFoundError,
         lambda tmp: list_sequences(otb_other_splits(tmp), "dev"),
         lambda tmp: ["sequences.csv", "'dev'", "['train', 'val']", "`split`"],
         "an empty list, found later as `test_sequences holds all of set()`"),
    Case("OTB table without its column", DatasetFormatError,
         lambda tmp: list_trackers(_without_tracker_column(otb(tmp))),
         lambda tmp: ["trackers.csv", "`tracker`"], "a bare KeyError: 'tracker'"),
    # ------------------------------------------------------------------------------- tensors
    Case("integer inputs", le.ShapeError,
         lambda tmp: quadratic(torch.ones(4, 3, dtype=torch.int64)),
         lambda tmp: ["`inputs`", "torch.int64", ".float()"], "torch's dtype error from inside"),
    Case("integer x0", le.ShapeError,
         lambda tmp: quadratic(torch.randn(4, 3), torch.zeros(4, 3, dtype=torch.int64)),
         lambda tmp: ["`x0`", "torch.int64"], "an integer start solved in integers"),
    Case("inputs of the wrong shape", le.ShapeError, lambda tmp: quadratic(torch.randn(4, 5)),
         lambda tmp: ["QuadraticEnergy.initial_solution(inputs)", "`inputs`", "(4, 5)"],
         "blaming an `x0` the user never passed"),
    Case("empty batch", le.ShapeError, lambda tmp: quadratic(torch.randn(0, 3)),
         lambda tmp: ["`inputs`", "(0, 3)", "at least one sample"],
         "torch's `cannot reshape tensor of 0 elements`"),
    Case("NaN in the inputs", le.ShapeError, lambda tmp: quadratic(nan_at((1, 2))),
         lambda tmp: ["`inputs`", "NaN", "mask"], "a NaN solved into NaN, masked silently"),
    Case("pose frame with every view missing", le.ShapeError,
         lambda tmp: pose_batch(visible=set_rows(False, (1,))),
         lambda tmp: ["`visible`", "frames [1]"], "a frame solved from the prior alone, "
         "reported converged"),
    Case("camera with zero focal length", le.ShapeError,
         lambda tmp: pose_batch(f=set_rows(0.0, (slice(None), 2))),
         lambda tmp: ["`f` > 0", "cameras [2]"],
         "the division by f reported as NaN `inputs`"),
    Case("tracking window with every tracker missing", le.ShapeError,
         lambda tmp: tracking_batch(every_tracker_missing=True),
         lambda tmp: ["`valid`", "windows [1]", "lost"],
         "a window with no observation solved and reported converged"),
]


def _typo(tmp: Path) -> Path:
    path = tmp / "typo.yaml"
    path.write_text("trainer:\n  max_epoks: 2\n")
    return path


def _without_tracker_column(root: Path) -> Path:
    drop_column(root / "trackers.csv", "tracker")
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a logger's default folder would appear here
    with pytest.raises(case.error) as info:
        case.run(tmp_path)
    message = str(info.value)
    for word in case.words(tmp_path):
        assert word in message, f"{case.name}: {word!r} not in {message!r} ({case.catches})"
    if case.command:
        left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
        assert not [p for p in left if p.endswith((".ckpt", "config.yaml")) or "wandb" in p
                    or p.startswith("runs")], left


def test_good_inputs_pass_the_same_checks(tmp_path: Path) -> None:
    """The checks reject only what they should: the same data, unspoilt, goes through."""
    quadratic(torch.randn(4, 3), torch.zeros(4, 3))
    pose_batch()
    tracking_batch(every_tracker_missing=False)
    assert len(read_cameras(h36m(tmp_path), ["S1"]).f) == 1
    assert list_sequences(otb(tmp_path), "dev") == ["SeqA", "SeqB-1", "SeqB-2"]


def test_every_case_has_a_row_in_the_docs() -> None:
    text = DOC.read_text()
    missing = [case.name for case in CASES if f"| {case.name} |" not in text]
    assert not missing, f"docs/errors.md has no row for {missing}"
    for error in (ConfigurationError, CheckpointNotFoundError, DatasetFormatError,
                  DatasetNotFoundError, le.ShapeError, le.IncompatibleSolverError, le.SolverError,
                  ArgumentError):
        assert f"`{error.__name__}`" in text, error.__name__
