"""Group-held-out splits: a group (speaker, site, design) is never on both sides."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transferkit.data.split import split_indices
from transferkit.errors import DataError


def _sides(splits: dict[str, list[int]], groups: list[str]) -> dict[str, set[str]]:
    return {name: {groups[i] for i in indices} for name, indices in splits.items()}


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n_groups=st.integers(2, 12), per_class=st.integers(2, 30), n_classes=st.integers(2, 5),
       seed=st.integers(0, 1000), with_given_test=st.booleans())
def test_no_group_is_on_both_sides(n_groups: int, per_class: int, n_classes: int, seed: int,
                                   with_given_test: bool) -> None:
    rng = random.Random(seed)
    labels = [f"c{c}" for c in range(n_classes) for _ in range(per_class)]
    groups = [f"g{rng.randrange(n_groups)}" for _ in labels]
    splits_given = [("test" if g == "g0" else "train") for g in groups] if with_given_test else None
    try:
        splits = split_indices(labels, groups=groups, seed=seed, splits=splits_given)
    except DataError as exc:  # too few groups to hold one out without emptying a class: said, not guessed
        assert "group" in str(exc)
        return
    sides = _sides(splits, groups)
    assert not sides["train"] & sides["val"] and not sides["train"] & sides["test"]
    assert not sides["val"] & sides["test"]
    assert sorted(i for part in splits.values() for i in part) == list(range(len(labels)))
    assert {labels[i] for i in splits["train"]} == set(labels)  # every class still trains
    assert splits == split_indices(labels, groups=groups, seed=seed, splits=splits_given)  # same seed, same split


def test_sizes_follow_the_fractions_in_whole_groups() -> None:
    labels = [c for c in "abc" for _ in range(40)]
    groups = [f"g{i % 8}" for i in range(120)]
    splits = split_indices(labels, groups=groups, val_fraction=0.25, test_fraction=0.25, seed=3)
    assert 15 <= len(splits["val"]) <= 45 and 15 <= len(splits["test"]) <= 45
    assert len(_sides(splits, groups)["val"]) >= 1


def test_one_group_cannot_be_held_out() -> None:
    with pytest.raises(DataError, match="at least 2 groups"):
        split_indices(["a", "b"] * 5, groups=["only"] * 10)
