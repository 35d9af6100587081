"""``lightning-energy cv`` end to end on synthetic tracking data, and its table."""

import json
from pathlib import Path

import pytest

from lightning_energy import crossval
from lightning_energy.cli import main, run_cli
from lightning_energy.datasets.otb import sequence_groups
from tests.datasets.otb_fixture import write_otb_layout

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "tracking" / "synthetic.yaml")
PROTOCOL = str(REPO / "recipes" / "tracking" / "cv" / "protocol.yaml")
TINY = ["--data.init_args.synthetic_sequences", "10", "--data.init_args.synthetic_length", "48",
        "--data.init_args.window", "16", "--data.init_args.batch_size", "4",
        "--trainer.max_steps", "4", "--trainer.val_check_interval", "2",
        "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cv")
    grid = out / "grid.yaml"
    grid.write_text(
        "grid:\n"
        "  model.init_args.layer.init_args.energy.init_args.kernel.init_args.scale: [0.1, 0.6]\n"
        "  callbacks.TrackerWeightsFromAUC.temperature: [0.05]\n"
        "monitor: val/success_auc\nmode: max\nsplit: train\n")
    main(["cv", "--config", RECIPE, "--config", PROTOCOL, "--grid", str(grid), "--folds", "0",
          "1", "--out", str(out / "learned"), "--name", "learned", *TINY])
    return out


def test_cv_writes_one_record_per_fold_with_the_grid_choice_and_the_checkpoint_choice(cv_run):
    records = [json.loads(p.read_text()) for p in sorted((cv_run / "learned").glob("*.json"))]
    assert [r["fold"] for r in records] == ["0", "1"]
    for record in records:
        scores = [row["score"] for row in record["grid"]]
        assert len(scores) == 2
        best = record["grid"][scores.index(max(scores))]["point"]
        assert record["grid_start"] == best
        assert record["grid_seconds"] > 0  # the search is timed (the study compares its cost)
        assert {"test/success_auc", "test/solver/converged"} <= set(record["test"])
        assert "test/baseline/median of top-5/success_auc" in record["test"]
        assert "test/success_auc" in record["grid_test"]
        selection = record["selection"]
        assert selection["history"][0][0] == 0  # the start competed (sanity-check validation)
        assert selection["best_step"] in [step for step, _ in selection["history"]]
        assert selection["best_score"] == max(score for _, score in selection["history"])


def test_cv_tests_the_weights_it_chose(cv_run):
    """Faulty variant caught: testing the last weights instead of the ones validation chose."""
    record = json.loads((cv_run / "learned" / "fold-0_seed-0.json").read_text())
    best = cv_run / "learned" / "fold-0_seed-0" / "checkpoints" / "best.ckpt"
    tested = run_cli(["test", "--config", RECIPE, "--config", PROTOCOL, *TINY,
                      "--data.init_args.fold", "0", "--data.init_args.seed", "0",
                      "--trainer.default_root_dir", str(cv_run / "retest"),
                      "--ckpt_path", str(best)])
    again = float(tested.trainer.callback_metrics["test/success_auc"])
    assert again == pytest.approx(record["test"]["test/success_auc"], abs=1e-9)


def test_table_has_the_energy_its_start_and_every_baseline(cv_run):
    text = crossval.main(["--table", str(cv_run / "learned")])
    rows = {line.split(" | ")[0].lstrip("| ") for line in text.splitlines()[2:]}
    assert {"learned", "learned: grid-search start", "best single tracker",
            "oracle: best tracker per frame (hindsight)"} <= rows
    learned = next(line for line in text.splitlines() if line.startswith("| learned |"))
    assert learned.endswith("| 2 |")  # two folds
    assert (cv_run / "learned" / "table.md").read_text().strip() == text
    pooled = crossval.main(["--table", str(cv_run / "learned"), "--name", "pooled"])
    assert any(line.startswith("| pooled |") and line.endswith("| 2 |")
               for line in pooled.splitlines())
    assert "| learned |" not in pooled


def test_table_cells_are_mean_and_population_std():
    record = {"name": "m", "fold": "S1", "seed": 0, "fit": True, "fit_seconds": 1.0,
              "test": {"test/mpjpe": 40.0, "test/baseline/DLT/mpjpe": 70.0}}
    other = {**record, "fold": "S5", "test": {"test/mpjpe": 44.0,
                                              "test/baseline/DLT/mpjpe": 80.0}}
    untrained = {**record, "name": "u", "fit": False, "test": {
        "test/mpjpe": 50.0, "test/baseline/DLT/mpjpe": 70.0}}  # same fold: DLT counted once
    text = crossval.table([record, other, untrained], metrics=["mpjpe"])
    assert "| m | 42.0 ± 2.0 | – | 1.000 ± 0.000 | 2 |" in text
    assert "| DLT | 75.0 ± 5.0 | – | – | 2 |" in text
    assert "| u | 50.0 | – | – | 1 |" in text


def test_bad_grid_files_and_arguments_are_named(tmp_path, capsys):
    bad = tmp_path / "grid.yaml"
    bad.write_text("grid: {}\nmonitor: val/loss\nmode: min\n")
    with pytest.raises(ValueError, match="grid"):
        crossval.load_grid(str(bad))
    bad.write_text("grid: {a: [1]}\nmonitor: val/loss\nmode: lowest\n")
    with pytest.raises(ValueError, match="mode"):
        crossval.load_grid(str(bad))
    with pytest.raises(SystemExit):
        crossval.parse_args(["--folds", "0"])
    assert "--out" in capsys.readouterr().err


def test_grid_points_and_callback_attributes():
    points = crossval.grid_points({"a": [1, 2], "b": [None]})
    assert points == [{"a": 1, "b": None}, {"a": 2, "b": None}]
    cli = run_cli(["--config", RECIPE, *TINY], run=False)
    crossval.set_callback_attribute(cli.trainer, "TrackerBaselines.top", 3)
    (baselines,) = [c for c in cli.trainer.callbacks if type(c).__name__ == "TrackerBaselines"]
    assert baselines.top == 3
    with pytest.raises(ValueError, match="TrackerWeightsFromAUC"):
        crossval.set_callback_attribute(cli.trainer, "TrackerWeightsFromAUC.temperature", 0.1)


def test_cv_folds_never_put_a_video_on_two_sides(tmp_path, monkeypatch):
    """Faulty variant: run_fold drops `--data.init_args.fold` (or reseeds the split per fold)."""
    root = write_otb_layout(tmp_path / "otb")
    built = []

    def spy(args, point, quiet=False):
        cli = build(args, point, quiet)
        built.append(cli)
        return cli

    build = crossval.build
    monkeypatch.setattr(crossval, "build", spy)
    crossval.main(["--config", RECIPE, "--folds", "0", "1", "2", "--no-fit",
                   "--out", str(tmp_path / "cv"), *TINY, "--data.init_args.root", str(root),
                   "--data.init_args.num_folds", "3", "--data.init_args.val_fraction", "0.3",
                   "--data.init_args.window", "4"])
    video = sequence_groups(root)
    tested = []
    for cli in built:
        sides = {split: {video[name] for name in cli.datamodule.splits[split]}
                 for split in ("train", "val", "test")}
        assert sides["val"]
        assert not sides["train"] & sides["test"]
        assert not sides["val"] & sides["test"]
        assert not sides["train"] & sides["val"]
        tested += cli.datamodule.splits["test"]
    assert sorted(tested) == sorted(video)  # the three test folds partition the sequences
