import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_energy.baselines import tracking as bl
from lightning_energy.data.otb import TrackerResults, TrackingSequences
from lightning_energy.data.tracking_synthetic import simulate_tracking
from lightning_energy.errors import ShapeError


def _tiny() -> TrackingSequences:
    gt = np.array([[10.0, 10, 10, 10], [12, 10, 10, 10], [14, 10, 10, 10], [0, 0, 0, 0]])
    shift = np.array([[1.0, 0, 0, 0], [30, 0, 0, 0], [2, 0, 0, 0]])
    boxes = gt[:, None] + shift[None]
    boxes[1, 0] = np.nan  # tracker 0 lost on frame 1
    data = TrackingSequences(["a", "b", "c"])
    data.add(TrackerResults("s", boxes, gt))
    return data


def test_single_median_mean_and_oracle_on_a_hand_made_case():
    data = _tiny()
    item = data["s"]
    median = bl.coordinatewise("median")(item)
    # frame 1: only trackers 1 and 2 -> median of x = (12+30 + 12+2)/2 (lower median of 2 = 14)
    assert median[0, 0].item() == pytest.approx(12.0)
    assert median[1, 0].item() == pytest.approx(14.0)
    mean = bl.coordinatewise("mean")(item)
    assert mean[0, 0].item() == pytest.approx(10 + 11)
    oracle = bl.oracle(item)
    assert oracle[1, 0].item() == pytest.approx(14.0)  # tracker 2, since tracker 0 is lost
    assert oracle[0, 0].item() == pytest.approx(11.0)
    single = bl.sequence_scores(bl.single_tracker(0)(item), item)
    # frames 0, 2: IoU 9/11 each; frame 1 lost (IoU 0); frame 3 invalid ground truth
    iou = 90 / 110
    assert single["mean_iou"] == pytest.approx(2 * iou / 3)


def test_sequence_oracle_and_agreement_selection_on_a_hand_made_case():
    item = _tiny()["s"]
    # Tracker 0 (IoU 9/11 on frames 0 and 2, lost on 1) has AUC 17/21 · 2/3; tracker 2 (IoU 2/3 on
    # all three valid frames) 14/21, the best of the sequence.
    aucs = [bl.sequence_scores(bl.single_tracker(k)(item), item)["success_auc"] for k in range(3)]
    assert aucs[0] == pytest.approx(17 / 21 * 2 / 3)
    assert aucs[2] == pytest.approx(14 / 21)
    assert torch.equal(bl.sequence_oracle(item), bl.single_tracker(2)(item))
    # Trackers 0 and 2 agree (mean IoU 2·(9/11)/4 over the 4 frames), tracker 1 agrees with
    # nobody; the trust of the other tracker breaks the tie between 0 and 2.
    for trust, chosen in (([1.0, 1.0, 2.0], 2), ([2.0, 1.0, 1.0], 0)):
        picked = bl.agreement_selected(np.array(trust))(item)
        torch.testing.assert_close(picked, bl.single_tracker(chosen)(item), equal_nan=True)
    # Uniform trust: trackers 0 and 2 tie, and the first wins.
    torch.testing.assert_close(bl.agreement_selected()(item), bl.single_tracker(0)(item),
                               equal_nan=True)
    with pytest.raises(ValueError, match="trust"):
        bl.agreement_selected(np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ShapeError, match="trust"):
        bl.agreement_selected(np.ones(2))(item)


def test_oracle_bounds_every_baseline_and_ranking():
    data = simulate_tracking(4, 80, 5, seed=1)
    aucs = bl.tracker_aucs(data)
    assert aucs.shape == (5,)
    oracle = bl.score_sequences(bl.oracle, data)["success_auc"]
    for fuser in (bl.coordinatewise("median"), bl.coordinatewise("mean", bl.top_k(aucs, 2)),
                  bl.robust_consensus()):
        assert bl.score_sequences(fuser, data)["success_auc"] <= oracle + 1e-12
    assert oracle >= aucs.max()
    per_sequence = bl.score_sequences(bl.sequence_oracle, data)["success_auc"]
    agreement = bl.score_sequences(bl.agreement_selected(), data)["success_auc"]
    assert aucs.max() <= per_sequence + 1e-12
    assert agreement <= per_sequence + 1e-12
    assert bl.top_k(aucs, 2)[0] == int(np.argmax(aucs))


def test_bad_combination_rule_raises():
    with pytest.raises(ValueError, match="how"):
        bl.coordinatewise("mode")


def test_cv_harness_runs_on_tiny_synthetic_data(capsys: pytest.CaptureFixture[str]):
    from lightning_energy.experiments.tracking_cv import main

    table = main(["--folds", "2", "--only-folds", "0", "--steps", "2", "--window", "8",
                  "--batch-size", "4", "--synthetic-sequences", "4", "--synthetic-length", "30",
                  "--synthetic-trackers", "3", "--variants", "learned (implicit, λ=1e-2)"])
    for row in ("best single (chosen on train)", "median of top-5", "oracle", "grid search",
                "learned (implicit"):
        assert row in table
    assert torch.get_num_threads() >= 1


def test_cv_harness_baselines_only_skips_the_energy(capsys: pytest.CaptureFixture[str]):
    from lightning_energy.experiments.tracking_cv import main

    table = main(["--folds", "2", "--baselines-only", "--synthetic-sequences", "4",
                  "--synthetic-length", "30", "--synthetic-trackers", "3"])
    assert "oracle (per-sequence best tracker" in table
    assert "agreement-selected" in table
    assert "grid search" not in table
    assert "learned" not in table
    assert "grid:" not in \
        capsys.readouterr().out


def test_cv_harness_selects_on_validation(capsys: pytest.CaptureFixture[str]):
    from lightning_energy.experiments.tracking_cv import SELECTED, main

    table = main(["--folds", "2", "--only-folds", "0", "--steps", "2", "--window", "8",
                  "--batch-size", "4", "--synthetic-sequences", "6", "--synthetic-length", "30",
                  "--synthetic-trackers", "3", "--val-fraction", "0.3", "--eval-every", "1",
                  "--weighted-reference", "--temporal", "3", "--variants",
                  "learned (implicit, λ=1e-2)", "ablation: no feature network"])
    assert SELECTED in table
    assert capsys.readouterr().out.count("validation: step") == 2 * 3  # steps 0, 1, 2 each


def test_best_on_validation_restores_the_best_state():
    from lightning_energy.experiments.tracking_cv import BestOnValidation, make_task

    data = simulate_tracking(3, 20, 3, seed=1)
    task = make_task(3, network=True)
    selection = BestOnValidation(data, every=1)
    selection._score(task, 0)
    best = {k: v.clone() for k, v in task.state_dict().items()}
    selection.best_auc = 2.0  # keep step 0's state whatever step 1 scores
    with torch.no_grad():
        task.energy.log_tracker_weight.add_(1.0)
    selection._score(task, 1)
    selection.on_train_end(None, task)  # type: ignore[arg-type]
    assert selection.best_step == 0
    assert all(torch.equal(v, best[k]) for k, v in task.state_dict().items())


def test_cv_runs_of_separate_variants_merge(tmp_path, capsys: pytest.CaptureFixture[str]):
    from lightning_energy.experiments.tracking_cv import SELECTED, main

    common = ["--folds", "2", "--only-folds", "1", "--steps", "1", "--window", "8",
              "--batch-size", "4", "--synthetic-sequences", "6", "--synthetic-length", "30",
              "--synthetic-trackers", "3", "--val-fraction", "0.3", "--eval-every", "1"]
    names = ["learned (implicit, λ=1e-2)", "ablation: no feature network"]
    for i, name in enumerate(names):
        main([*common, "--variants", name, "--out", str(tmp_path / f"{i}.json")])
    table = main(["--merge", str(tmp_path / "0.json"), str(tmp_path / "1.json")])
    assert all(name in table for name in [*names, SELECTED])
    assert "1 folds merged from 2 runs" in capsys.readouterr().out


def test_grid_search_tries_every_motion_scale_kernel_family_and_alpha(
        monkeypatch: pytest.MonkeyPatch):
    from lightning_energy.energies.robust import GemanMcClure
    from lightning_energy.experiments import tracking_cv
    from lightning_energy.experiments.tracking_cv import GRID, GRID_ALPHAS, grid_search, make_task

    tried: list[tuple[str, float | None, float]] = []

    def recording(*args, **kwargs):
        tried.append((kwargs["kernel"], kwargs["motion"], kwargs["alpha"]))
        return make_task(*args, **kwargs)

    monkeypatch.setattr(tracking_cv, "make_task", recording)
    data = simulate_tracking(3, 30, 3, seed=2)
    point, _ = grid_search(data, bl.tracker_aucs(data), motions=(0.05,),
                           kernels=("cauchy", "geman_mcclure"), alphas=(1.0, 0.1))
    size = len(GRID["temperature"]) * len(GRID["delta"])
    for combination in itertools.product(("cauchy", "geman_mcclure"), (None, 0.05), (1.0, 0.1)):
        assert tried.count(combination) == size
    assert len(tried) == 8 * size
    assert (point["kernel"], point["motion"], point["alpha"]) in tried
    tried.clear()
    grid_search(data, bl.tracker_aucs(data))
    assert {alpha for *_, alpha in tried} == set(GRID_ALPHAS)
    with pytest.raises(ValueError, match="kernels"):
        grid_search(data, bl.tracker_aucs(data), kernels=())
    for alphas in ((), (1.0, 0.0)):
        with pytest.raises(ValueError, match="alphas"):
            grid_search(data, bl.tracker_aucs(data), alphas=alphas)

    energy = make_task(3, motion=0.05).layer.energy
    assert energy.motion is not None
    assert torch.isclose(energy.motion.scale, torch.tensor(0.05))
    assert energy.motion.log_scale.requires_grad
    assert make_task(3).layer.energy.motion is None
    kernel = make_task(3, delta=0.4, kernel="geman_mcclure").layer.energy.robust
    assert isinstance(kernel, GemanMcClure)
    assert torch.isclose(kernel.scale, torch.tensor(0.4))
    assert kernel.log_scale.requires_grad
    with pytest.raises(ValueError, match="kernel"):
        make_task(3, kernel="tukey")
    assert tracking_cv.parse_args(["--kernels", "huber", "cauchy"]).kernels == ["huber", "cauchy"]
    with pytest.raises(SystemExit):
        tracking_cv.parse_args(["--kernels", "tukey"])
    assert tracking_cv.parse_args([]).alphas == list(GRID_ALPHAS)
    assert tracking_cv.parse_args(["--alphas", "1", "0.1"]).alphas == [1.0, 0.1]
    with pytest.raises(SystemExit):
        tracking_cv.parse_args(["--alphas", "1", "0"])


def test_ensemble_fuser_averages_centres_and_log_sizes():
    from lightning_energy.experiments import tracking_cv

    data = simulate_tracking(1, 20, 3, seed=3)
    item = next(iter(data))
    tasks = [tracking_cv.make_task(3, delta=0.15), tracking_cv.make_task(3, delta=0.4)]
    a, b = (tracking_cv.task_fuser(task)(item) for task in tasks)
    got = tracking_cv.ensemble_fuser(tasks)(item)
    centre = 0.5 * ((a[:, :2] + 0.5 * a[:, 2:]) + (b[:, :2] + 0.5 * b[:, 2:]))
    size = torch.sqrt(a[:, 2:] * b[:, 2:])  # geometric mean = mean of the log-sizes
    assert not torch.allclose(a, b)
    torch.testing.assert_close(got, torch.cat([centre - 0.5 * size, size], -1))
    torch.testing.assert_close(tracking_cv.ensemble_fuser(tasks[:1])(item), a)


def test_cv_harness_ensemble_row_and_bad_size(capsys: pytest.CaptureFixture[str]):
    from lightning_energy.experiments.tracking_cv import main

    table = main(["--folds", "2", "--only-folds", "0", "--steps", "1", "--window", "8",
                  "--batch-size", "4", "--synthetic-sequences", "4", "--synthetic-length", "30",
                  "--synthetic-trackers", "3", "--ensemble", "2",
                  "--variants", "learned (implicit, λ=1e-2)"])
    assert "learned (implicit, λ=1e-2), ensemble of 2" in table
    with pytest.raises(SystemExit):
        main(["--ensemble", "0"])
    assert "--ensemble must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--motion-scales", "0.05", "0"])
    assert "--motion-scales must be > 0" in capsys.readouterr().err


def test_seeded_task_draws_the_same_network_whatever_the_global_state():
    from lightning_energy.experiments.tracking_cv import seeded_task

    states = []
    for noise in (1, 2):
        torch.manual_seed(noise)  # a different global state before each build
        task = seeded_task(7, 3, network=True, temporal=3)
        states.append(task.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = seeded_task(8, 3, network=True, temporal=3).state_dict()
    assert not all(torch.equal(states[0][k], other[k]) for k in other)


def test_identity_embedding_ablation_builds_a_network_without_it():
    from lightning_energy.experiments.tracking_cv import ABLATIONS, make_task

    options = ABLATIONS["ablation: no tracker-identity embedding"]
    net = make_task(3, network=True, **options).backbone
    assert net is not None
    assert net.embedding is None
    assert make_task(3, network=True).backbone.embedding.embedding_dim == 4


def test_cv_harness_selector_row_and_context_network(capsys: pytest.CaptureFixture[str]):
    from lightning_energy.experiments.tracking_cv import SELECTOR, main, make_task
    from lightning_energy.networks.tracker import ContextPool

    table = main(["--folds", "2", "--only-folds", "0", "--steps", "2", "--window", "8",
                  "--batch-size", "4", "--synthetic-sequences", "4", "--synthetic-length", "30",
                  "--synthetic-trackers", "3", "--selector", "--weighted-reference", "--context",
                  "--variants", "learned (implicit, λ=1e-2)"])
    assert SELECTOR in table
    assert "learned (implicit" in table
    assert isinstance(make_task(3, network=True, context=True).backbone.context, ContextPool)
    assert make_task(3, network=True).backbone.context is None


def test_refit_trains_on_the_whole_training_fold_for_the_chosen_steps(
        capsys: pytest.CaptureFixture[str]):
    from lightning_energy.experiments.tracking_cv import (
        main,
        make_task,
        parse_args,
        refit,
        task_fuser,
    )

    data = simulate_tracking(num_sequences=4, length=30, num_trackers=3, seed=0)
    train, test = data.subset(data.names[:3]), data.subset(data.names[3:])
    args = parse_args(["--window", "8", "--batch-size", "4", "--balanced"])
    point = {"delta": 0.15, "weights": [1.0, 0.5, 0.2]}
    untrained = bl.score_sequences(task_fuser(make_task(3, **point)), test)
    assert refit(0, train, test, 0, args, 3, **point)["success_auc"] == untrained["success_auc"]
    trained = refit(3, train, test, 0, args, 3, network=True, **point)
    assert trained["seconds"] > 0
    assert trained["mean_iou"] != untrained["mean_iou"]  # AUC steps in 1/21: too coarse here
    table = main(["--folds", "2", "--only-folds", "0", "--steps", "2", "--eval-every", "1",
                  "--val-fraction", "0.3", "--refit", "--window", "8", "--batch-size", "4",
                  "--synthetic-sequences", "6", "--synthetic-length", "30",
                  "--synthetic-trackers", "3", "--variants", "learned (implicit, λ=1e-2)"])
    assert "learned (implicit, λ=1e-2), refit on train + validation" in table
    with pytest.raises(SystemExit):
        parse_args(["--refit"])
    assert "--refit needs --val-fraction > 0" in capsys.readouterr().err


def test_tuning_variants_reach_the_optimizer_and_the_network():
    from lightning_energy.experiments.tracking_cv import (
        LEARNING_RATES,
        NETWORK_WIDTHS,
        TUNING,
        make_task,
        parse_args,
        variant_options,
    )

    args = parse_args(["--variants", *TUNING, "--temporal", "3"])
    assert args.variants == [*LEARNING_RATES, *NETWORK_WIDTHS]
    expected = {"network lr 1e-3": (2e-2, 1e-3, 32), "network lr 1e-2": (2e-2, 1e-2, 32),
                "energy lr 5e-3": (5e-3, 3e-3, 32), "network width 16": (2e-2, 3e-3, 16),
                "network width 64": (2e-2, 3e-3, 64)}
    for name in args.variants:
        task = make_task(3, **variant_options(name, args))
        rates = {group["name"]: group["lr"] for group in task.configure_optimizers().param_groups}
        width = task.backbone.temporal.convs[0].in_channels
        assert (rates["energy"], rates["backbone"], width) == expected[name.rsplit(", ", 1)[1]]


def test_train_task_window_zero_trains_on_whole_sequences(monkeypatch: pytest.MonkeyPatch):
    from lightning_energy.data.tracking_synthetic import simulate_tracking
    from lightning_energy.experiments import tracking_cv

    data = simulate_tracking(3, 25, 3, seed=0)
    lengths = sorted(int(item.gt.shape[0]) for item in data)
    seen: list[list[int]] = []
    collate = tracking_cv.collate_tracking

    def spy(items):
        batch = collate(items)
        seen.append(sorted(batch.frame_valid.sum(1).tolist()))
        return batch

    monkeypatch.setattr(tracking_cv, "collate_tracking", spy)
    task = tracking_cv.make_task(3, network=True)
    tracking_cv.train_task(task, data, steps=3, window=0, batch_size=3, seed=0)
    assert len(seen) == 3
    assert all(frames == lengths for frames in seen)
    with pytest.raises(SystemExit):
        tracking_cv.parse_args(["--window", "-1"])


def test_train_task_passes_tracker_dropout_to_the_training_windows(
        monkeypatch: pytest.MonkeyPatch):
    from lightning_energy.data.tracking_synthetic import simulate_tracking
    from lightning_energy.experiments import tracking_cv

    data = simulate_tracking(3, 25, 4, seed=0)
    collate = tracking_cv.collate_tracking
    trackers: dict[float, list[int]] = {0.0: [], 0.5: []}
    rate = 0.0

    def spy(items):
        batch = collate(items)
        trackers[rate] += batch.valid.any(1).sum(1).tolist()  # trackers with boxes per window
        return batch

    monkeypatch.setattr(tracking_cv, "collate_tracking", spy)
    for rate in trackers:
        task = tracking_cv.make_task(4)
        tracking_cv.train_task(task, data, steps=4, window=0, batch_size=3, seed=0,
                               tracker_dropout=rate)
    assert trackers[0.0] == [4] * 12
    assert len(trackers[0.5]) == 12
    assert min(trackers[0.5]) >= 1
    assert sum(trackers[0.5]) < 0.8 * sum(trackers[0.0])
    assert tracking_cv.parse_args(["--tracker-dropout", "0.2"]).tracker_dropout == 0.2
    for bad in ("1", "-0.1"):
        with pytest.raises(SystemExit):
            tracking_cv.parse_args(["--tracker-dropout", bad])


def test_box_loss_flag_reaches_the_learned_variants_loss():
    from lightning_energy.experiments.tracking_cv import make_task, parse_args, variant_options
    from lightning_energy.tasks.tracking import batch_frame, giou_loss

    data = simulate_tracking(1, 20, 3, seed=4)
    batch = bl.batch_of(next(iter(data)))
    mask = batch.target_valid & batch.frame_valid
    losses = []
    for flag, generalized in (("giou", True), ("iou", False)):
        args = parse_args(["--box-loss", flag])
        task = make_task(3, **variant_options("learned (implicit, λ=1e-2)", args))
        assert task.box_loss == flag
        solution = task(batch)
        boxes = batch_frame(batch).to_boxes(solution.x.to(batch.boxes.dtype))
        expected = giou_loss(boxes, batch.target, mask, generalized=generalized)
        assert torch.equal(task.loss(solution, batch), expected)
        losses.append(expected)
    assert losses[0] > losses[1]  # GIoU's hull penalty: the check tells the two apart
    assert parse_args([]).box_loss == "giou"
    with pytest.raises(SystemExit):
        parse_args(["--box-loss", "l1"])


def test_merge_refuses_runs_whose_settings_differ(tmp_path: Path):
    from lightning_energy.experiments.tracking_cv import merge_runs, parse_args

    def run(name: str, *argv: str) -> str:
        variants = [] if "--variants" in argv else ["--variants", "learned (implicit, λ=1e-2)"]
        args = vars(parse_args([*variants, *argv]))
        if name == "old":
            del args["box_loss"], args["alphas"]  # written before these options existed
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"args": args, "folds": [], "seconds": 1.0}))
        return str(path)

    base, old = run("base"), run("old")
    assert merge_runs([base, old])[2] == 2.0  # missing options count as their defaults
    assert merge_runs([base, run("baselines", "--baselines-only", "--steps", "7")])[2] == 2.0
    grid_only = run("grid_only", "--variants", "--steps", "7")  # no learned rows to disagree
    assert merge_runs([base, grid_only])[2] == 2.0
    with pytest.raises(ValueError, match="different `kernels`"):
        merge_runs([base, run("grid_kernels", "--variants", "--kernels", "huber")])
    for name, argv in {"box_loss": ["--box-loss", "iou"], "alphas": ["--alphas", "1", "0.1"],
                       "tracker_dropout": ["--tracker-dropout", "0.2"],
                       "seed": ["--seed", "1"]}.items():
        with pytest.raises(ValueError, match=f"different `{name}`"):
            merge_runs([base, run(name, *argv)])
    with pytest.raises(ValueError, match="different `seed`"):  # data settings bind every run
        merge_runs([base, run("baselines_seed", "--baselines-only", "--seed", "1")])
