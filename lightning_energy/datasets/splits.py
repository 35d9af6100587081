"""Sequence-level splits that never put one video (or subject) on both sides.

Everything works on plain lists of names (sequences, videos, subjects) and an optional mapping
name → group id; names in one group always land on the same side. A name missing from the mapping
is its own group. Results are deterministic for a given seed and keep the input order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _group_units(names: Sequence[str], groups: Mapping[str, str] | None) -> list[list[str]]:
    """Names gathered by group, groups in order of first appearance."""
    if len(set(names)) != len(names):
        raise ValueError(f"Expected distinct names, got duplicates in {list(names)}.")
    units: dict[str, list[str]] = {}
    for name in names:
        key = groups.get(name, name) if groups is not None else name
        units.setdefault(key, []).append(name)
    return list(units.values())


def _shuffled(units: list[list[str]], seed: int) -> list[list[str]]:
    order = np.random.default_rng(seed).permutation(len(units))
    return [units[i] for i in order]


def _in_order(names: Sequence[str], chosen: set[str]) -> list[str]:
    return [name for name in names if name in chosen]


def kfold_sequences(
    sequences: Sequence[str],
    k: int,
    fold: int,
    seed: int = 0,
    groups: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """Split names into k folds by group and return (train, test) for one fold.

    Groups are shuffled with ``seed`` and dealt, largest first, to the fold holding the fewest
    names so far, so fold sizes differ by at most the size of one group. Over ``fold = 0..k-1``
    the test sides partition ``sequences``.

    Args:
        sequences: Distinct names (sequences, subjects, ...).
        k: Number of folds, at least 2 and at most the number of groups.
        fold: The held-out fold, ``0 <= fold < k``.
        seed: Seed of the shuffle.
        groups: Optional name → group id; a group is never split.

    Returns:
        ``(train, test)`` names, each in the order of ``sequences``.

    Raises:
        ValueError: On a bad ``k``/``fold`` or duplicate names.

    Example:
        >>> train, test = kfold_sequences(["a-1", "a-2", "b", "c"], 3, 0,
        ...                               groups={"a-1": "a", "a-2": "a"})
        >>> sorted(train + test)
        ['a-1', 'a-2', 'b', 'c']
    """
    units = _group_units(sequences, groups)
    if not 2 <= k <= len(units):
        raise ValueError(f"Expected 2 <= k <= {len(units)} (the number of groups), got k={k}.")
    if not 0 <= fold < k:
        raise ValueError(f"Expected 0 <= fold < k={k}, got fold={fold}.")
    shuffled = _shuffled(units, seed)
    shuffled.sort(key=len, reverse=True)  # stable: ties keep the shuffled order
    sizes = [0] * k
    held_out: set[str] = set()
    for unit in shuffled:
        target = min(range(k), key=lambda i: sizes[i])
        sizes[target] += len(unit)
        if target == fold:
            held_out.update(unit)
    test = _in_order(sequences, held_out)
    train = [name for name in sequences if name not in held_out]
    return train, test


def train_val_split(
    sequences: Sequence[str],
    val_fraction: float,
    seed: int = 0,
    groups: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """Carve a validation set of whole groups out of ``sequences``.

    Shuffled groups are moved to validation until it holds at least
    ``round(val_fraction * len(sequences))`` names (at least one group when ``val_fraction > 0``),
    always leaving one group for training.

    Args:
        sequences: Distinct names.
        val_fraction: Wanted share of names in validation, ``0 <= val_fraction < 1``.
        seed: Seed of the shuffle.
        groups: Optional name → group id; a group is never split.

    Returns:
        ``(train, val)`` names, each in the order of ``sequences``; ``val`` is empty when
        ``val_fraction`` is 0 or there is a single group.

    Raises:
        ValueError: On a fraction outside [0, 1) or duplicate names.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"Expected 0 <= val_fraction < 1, got {val_fraction}.")
    units = _shuffled(_group_units(sequences, groups), seed)
    wanted = max(round(val_fraction * len(sequences)), 1) if val_fraction > 0 else 0
    chosen: set[str] = set()
    for unit in units[:-1]:
        if len(chosen) >= wanted:
            break
        chosen.update(unit)
    val = _in_order(sequences, chosen)
    train = [name for name in sequences if name not in chosen]
    return train, val
