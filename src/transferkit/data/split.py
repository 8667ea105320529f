"""Stratified, deterministic train / val / test splits that never fail on small classes.

scikit-learn's `train_test_split(stratify=…)` refuses a class with a single example and a test set
smaller than the number of classes — exactly the datasets transfer learning is for. This splitter
allocates each split's size across classes in proportion to their counts (largest-remainder
rounding, so the totals match the fractions), under three rules:

1. every class keeps at least one example in train;
2. the first evaluation split — test, or val when there is no test — gets at least one example of
   every class that has two or more (a class of two: one to train, one to test), so that every
   class is evaluated whenever it can be;
3. beyond that, a split never takes more than a class can spare.

The same labels and seed always give the same split, on every machine (it uses only
`random.Random(seed)`, no global state).

With `groups` (the speaker, site, device or design of each example), held-out splits are made of
whole groups — a group is never on both sides — so that validation measures what the test will:
performance on groups never seen in training. Groups are taken in a seeded order, each into the
first held-out split that still needs examples, unless it would take the last training examples
of a class.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence

from transferkit.data.dataset import SPLITS, canonical_split
from transferkit.errors import ConfigError, DataError


def split_indices(
    labels: Sequence[Hashable],
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    splits: Sequence[str] | None = None,
    groups: Sequence[Hashable] | None = None,
) -> dict[str, list[int]]:
    """Indices of `labels` for each of "train", "val" and "test" (each list sorted).

    Fractions are of all examples. When `splits` (one name per example, e.g. from a split folder
    or column) is given, it is used as is: "train" is required; a missing "val" is carved out of
    train, `val_fraction` of all examples; a missing "test" stays empty (`test_fraction` is then
    not used). A fraction of 0 gives an empty split. With `groups`, the splits that are carved out
    hold whole groups (see the module docstring); without, they are stratified by class.
    """
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    if splits is None and val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"val_fraction + test_fraction must be below 1 to leave examples for training; got "
            f"{val_fraction} + {test_fraction}"
        )
    rng = random.Random(seed)
    total = len(labels)
    if groups is not None and len(groups) != total:
        raise DataError(f"groups has {len(groups)} entries for {total} labels; give one per example")
    if splits is not None:
        return _from_given(labels, splits, val_fraction, rng, groups)
    if groups is not None:
        return _by_groups(labels, groups, list(range(total)), {"test": _target(test_fraction, total),
                                                                "val": _target(val_fraction, total)}, rng)

    by_class = _group(labels, range(total))
    counts = [len(indices) for indices in by_class]
    spare = [n - 1 for n in counts]
    test_counts = _allocate(counts, spare, _target(test_fraction, total), test_fraction > 0, rng)
    spare = [s - t for s, t in zip(spare, test_counts, strict=True)]
    val_counts = _allocate(counts, spare, _target(val_fraction, total), test_fraction == 0, rng)

    result: dict[str, list[int]] = {split: [] for split in SPLITS}
    for indices, n_test, n_val in zip(by_class, test_counts, val_counts, strict=True):
        shuffled = list(indices)
        rng.shuffle(shuffled)
        result["test"] += shuffled[:n_test]
        result["val"] += shuffled[n_test : n_test + n_val]
        result["train"] += shuffled[n_test + n_val :]
    return {split: sorted(indices) for split, indices in result.items()}


def _check_fraction(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")


def _target(fraction: float, total: int) -> int:
    """round(fraction × total), halves up, and at least 1 when the fraction asks for any."""
    if fraction <= 0 or total == 0:
        return 0
    return max(1, math.floor(fraction * total + 0.5))


def _group(labels: Sequence[Hashable], indices: Sequence[int] | range) -> list[list[int]]:
    """Indices grouped by class, classes in sorted order (so the result is independent of row order)."""
    groups: dict[Hashable, list[int]] = {}
    for i in indices:
        groups.setdefault(labels[i], []).append(i)
    return [groups[key] for key in sorted(groups, key=lambda k: (type(k).__name__, str(k)))]


def _allocate(
    counts: list[int], spare: list[int], target: int, at_least_one: bool, rng: random.Random
) -> list[int]:
    """How many examples of each class go to a split of `target` examples.

    Proportional to `counts` with largest-remainder rounding (ties broken by `rng`), never more
    than `spare[c]`, and at least one per class that can spare one when `at_least_one`.
    """
    total = sum(counts)
    if target <= 0 or total == 0:
        return [0] * len(counts)
    exact = [n * target / total for n in counts]
    given = [min(cap, math.floor(share)) for share, cap in zip(exact, spare, strict=True)]
    if at_least_one:
        given = [min(cap, max(g, 1)) for g, cap in zip(given, spare, strict=True)]
    ties = [rng.random() for _ in counts]
    # largest shortfall first: a class already raised to its minimum of one comes last
    order = sorted(range(len(counts)), key=lambda c: (given[c] - exact[c], ties[c]))
    remaining = target - sum(given)
    while remaining > 0:
        progressed = False
        for c in order:
            if given[c] < spare[c]:
                given[c] += 1
                remaining -= 1
                progressed = True
                if remaining == 0:
                    break
        if not progressed:  # every class has given all it can spare
            break
    return given


def _by_groups(labels: Sequence[Hashable], groups: Sequence[Hashable], pool: list[int], targets: dict[str, int],
               rng: random.Random) -> dict[str, list[int]]:
    """Held-out splits of whole groups from `pool` (the rest trains), each about its target size."""
    members: dict[Hashable, list[int]] = {}
    for i in pool:
        members.setdefault(groups[i], []).append(i)
    names = sorted(members, key=lambda g: (type(g).__name__, str(g)))
    rng.shuffle(names)
    wanted = {split: n for split, n in targets.items() if n > 0}
    if wanted and len(names) < 2:
        raise DataError(f"validation by group needs at least 2 groups; the data has {len(names)} "
                        f"({', '.join(map(str, names))}). Add groups, or drop the group column to split by example")
    train_count: dict[Hashable, int] = {}
    for i in pool:
        train_count[labels[i]] = train_count.get(labels[i], 0) + 1
    result: dict[str, list[int]] = {split: [] for split in SPLITS}
    for name in names:
        indices = members[name]
        # a split takes a group while it is empty, or while the group brings it closer to its target
        need = [split for split in ("test", "val") if split in wanted
                and (not result[split] or wanted[split] - len(result[split]) > len(indices) / 2)]
        taken: dict[Hashable, int] = {}
        for i in indices:
            taken[labels[i]] = taken.get(labels[i], 0) + 1
        keeps_classes = all(train_count[c] - n >= 1 for c, n in taken.items())
        if need and keeps_classes:
            result[need[0]] += indices
            for c, n in taken.items():
                train_count[c] -= n
        else:
            result["train"] += indices
    for split in wanted:
        if not result[split]:
            raise DataError(f"no group could be held out for {split} without taking the last training examples of "
                            "a class; add groups, or drop the group column to split by example")
    return {split: sorted(indices) for split, indices in result.items()}


def _from_given(
    labels: Sequence[Hashable], splits: Sequence[str], val_fraction: float, rng: random.Random,
    groups: Sequence[Hashable] | None = None,
) -> dict[str, list[int]]:
    """Use the user's own split; carve val out of train when it has none."""
    if len(splits) != len(labels):
        raise DataError(f"splits has {len(splits)} entries for {len(labels)} labels; give one per example")
    names = [canonical_split(s) if isinstance(s, str) else None for s in splits]
    unknown = sorted({str(s) for s, name in zip(splits, names, strict=True) if name is None})
    if unknown:
        raise DataError(
            f"unknown split name(s) {', '.join(map(repr, unknown[:5]))}; use train, val (or valid, "
            "validation) or test"
        )
    result = {split: [i for i, name in enumerate(names) if name == split] for split in SPLITS}
    if not result["train"]:
        raise DataError(
            "the given split has no 'train' examples; add a train split (folder or column value)"
        )
    if not result["val"] and val_fraction > 0 and groups is not None:
        carved = _by_groups(labels, groups, result["train"], {"val": _target(val_fraction, len(labels))}, rng)
        result["train"], result["val"] = carved["train"], carved["val"]
    elif not result["val"] and val_fraction > 0:
        by_class = _group(labels, result["train"])
        counts = [len(indices) for indices in by_class]
        spare = [n - 1 for n in counts]
        val_counts = _allocate(
            counts, spare, _target(val_fraction, len(labels)), not result["test"], rng
        )
        train: list[int] = []
        val: list[int] = []
        for indices, n_val in zip(by_class, val_counts, strict=True):
            shuffled = list(indices)
            rng.shuffle(shuffled)
            val += shuffled[:n_val]
            train += shuffled[n_val:]
        result["train"], result["val"] = sorted(train), sorted(val)
    return result
