from pathlib import Path

import pytest

from lightning_energy.datasets.otb import list_sequences, sequence_groups
from lightning_energy.datasets.splits import kfold_sequences, train_val_split

TINY = Path(__file__).parents[1] / "fixtures" / "otb_tiny"

NAMES = [f"s{i:02d}" for i in range(20)] + ["Jogging-1", "Jogging-2", "car1_1", "car1_2", "car1_3"]
GROUPS = {"Jogging-1": "Jogging", "Jogging-2": "Jogging", "car1_1": "car1", "car1_2": "car1"}
GROUPS["car1_3"] = "car1"


def _group_of(name: str) -> str:
    return GROUPS.get(name, name)


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_partition_and_never_split_a_group(k: int, seed: int):
    tests = []
    for fold in range(k):
        train, test = kfold_sequences(NAMES, k, fold, seed, GROUPS)
        assert sorted(train + test) == sorted(NAMES)
        assert not set(train) & set(test)
        assert not {_group_of(n) for n in train} & {_group_of(n) for n in test}
        assert test == [n for n in NAMES if n in test]  # input order kept
        tests.append(test)
    flat = [name for test in tests for name in test]
    assert sorted(flat) == sorted(NAMES)  # the test sides partition the set
    sizes = [len(test) for test in tests]
    assert max(sizes) - min(sizes) <= 3  # at most one group (car1 has 3) apart


def test_kfold_is_deterministic_and_depends_on_the_seed():
    first = kfold_sequences(NAMES, 5, 2, seed=3, groups=GROUPS)
    assert kfold_sequences(NAMES, 5, 2, seed=3, groups=GROUPS) == first
    others = {tuple(kfold_sequences(NAMES, 5, 2, seed=s, groups=GROUPS)[1]) for s in range(5)}
    assert len(others) > 1


def test_kfold_without_groups_treats_each_name_alone():
    train, test = kfold_sequences(["a", "b", "c", "d"], 4, 1, seed=0)
    assert len(test) == 1
    assert len(train) == 3


def test_kfold_argument_errors():
    with pytest.raises(ValueError, match="number of groups"):
        kfold_sequences(["a-1", "a-2", "b"], 3, 0, groups={"a-1": "a", "a-2": "a"})
    with pytest.raises(ValueError, match="0 <= fold < k"):
        kfold_sequences(NAMES, 3, 3)
    with pytest.raises(ValueError, match="duplicates"):
        kfold_sequences(["a", "a", "b"], 2, 0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_train_val_split_keeps_groups_and_fraction(seed: int):
    train, val = train_val_split(NAMES, 0.2, seed, GROUPS)
    assert sorted(train + val) == sorted(NAMES)
    assert not {_group_of(n) for n in train} & {_group_of(n) for n in val}
    assert 5 <= len(val) <= 7  # round(0.2 * 25) = 5, plus at most one group overshoot
    assert train_val_split(NAMES, 0.2, seed, GROUPS) == (train, val)


def test_train_val_split_edge_cases():
    assert train_val_split(NAMES, 0.0, 0) == (NAMES, [])
    train, val = train_val_split(["a", "b"], 0.01, 0)
    assert len(val) == 1  # a positive fraction gives at least one group
    assert len(train) == 1
    one_group = {"x-1": "x", "x-2": "x"}
    assert train_val_split(["x-1", "x-2"], 0.5, 0, one_group) == (["x-1", "x-2"], [])
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(NAMES, 1.0, 0)


def test_generic_use_with_subjects():
    subjects = ["S1", "S5", "S6", "S7", "S8"]
    train, test = kfold_sequences(subjects, 5, 0, seed=0)
    assert len(test) == 1
    assert set(train) | set(test) == set(subjects)


UAV123 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "uav123_tracker_fusion"


def _videos_on_both_sides(train: list[str], test: list[str], video: dict[str, str]) -> int:
    return len({video[n] for n in train} & {video[n] for n in test})


@pytest.mark.skipif(not (UAV123 / "sequences.csv").is_file(),
                    reason=f"UAV123 tracker-fusion data not staged at {UAV123}")
def test_real_uav123_folds_keep_every_video_on_one_side():
    """Faulty variant: the 5 development folds ignore `video_group` (36 videos leak, summed)."""
    names = list_sequences(UAV123, "dev")
    video = sequence_groups(UAV123)
    assert len(names) == 86
    assert len(set(video[n] for n in names)) == 61  # 16 videos are cut into several sequences
    grouped = [kfold_sequences(names, 5, fold, 0, video) for fold in range(5)]
    ungrouped = [kfold_sequences(names, 5, fold, 0) for fold in range(5)]
    assert sum(_videos_on_both_sides(*split, video) for split in grouped) == 0
    assert sum(_videos_on_both_sides(*split, video) for split in ungrouped) == 36
    for train, _ in grouped:
        fit, val = train_val_split(train, 0.2, 0, video)
        assert _videos_on_both_sides(fit, val, video) == 0


def test_otb_naming_rule_groups_the_tiny_fixture():
    """Faulty variant: `otb_video_group` keeps the `-<n>` suffix (each target its own video)."""
    video = sequence_groups(TINY)
    assert video["SeqB-1"] == video["SeqB-2"] != video["SeqA"]
    for seed in range(4):
        train, test = kfold_sequences(list_sequences(TINY), 2, 0, seed, video)
        assert _videos_on_both_sides(train, test, video) == 0


def test_default_seed_is_zero():
    """Faulty variant: another default seed (published folds would silently change)."""
    assert kfold_sequences(NAMES, 5, 1, groups=GROUPS) == kfold_sequences(NAMES, 5, 1, 0, GROUPS)
    assert train_val_split(NAMES, 0.2, groups=GROUPS) == train_val_split(NAMES, 0.2, 0, GROUPS)


@pytest.mark.parametrize("seed", range(4))
def test_groups_are_dealt_largest_first_to_the_smallest_fold(seed):
    """Faulty variant: groups dealt smallest first (a big group lands on a full fold: 6 vs 2)."""
    names = ["v-1", "v-2", "v-3", "v-4", "a", "b", "c", "d"]
    groups = {f"v-{i}": "v" for i in range(1, 5)}
    sizes = sorted(len(kfold_sequences(names, 2, fold, seed, groups)[1]) for fold in range(2))
    assert sizes == [4, 4]


def test_a_small_positive_fraction_moves_exactly_one_group():
    """Faulty variant: a positive fraction asks for at least two names."""
    names = ["a", "b", "c", "d", "e"]
    train, val = train_val_split(names, 0.01, 3)
    assert len(val) == 1
    assert len(train) == 4
