"""split_indices: stratified, deterministic, and graceful on the tiny classes real datasets have."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from transferkit.data.split import split_indices
from transferkit.errors import ConfigError, DataError


def _check_partition(result: dict[str, list[int]], n: int) -> None:
    assert set(result) == {"train", "val", "test"}
    everything = result["train"] + result["val"] + result["test"]
    assert sorted(everything) == list(range(n)), "every example in exactly one split"
    assert all(result[s] == sorted(result[s]) for s in result)


def _per_class(labels: list[str], indices: list[int]) -> Counter:
    return Counter(labels[i] for i in indices)


def test_balanced_classes_get_their_fractions() -> None:
    labels = [c for c in "abc" for _ in range(100)]
    result = split_indices(labels)
    _check_partition(result, 300)
    for split, expected in (("train", 70), ("val", 15), ("test", 15)):
        assert _per_class(labels, result[split]) == {"a": expected, "b": expected, "c": expected}


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    labels = [f"c{i % 4}" for i in range(80)]
    assert split_indices(labels, seed=3) == split_indices(list(labels), seed=3)
    assert split_indices(labels, seed=3) != split_indices(labels, seed=4)


def test_totals_match_fractions_on_imbalanced_data() -> None:
    labels = ["big"] * 700 + ["mid"] * 250 + ["small"] * 43 + ["rare"] * 7
    result = split_indices(labels, val_fraction=0.1, test_fraction=0.2, seed=1)
    _check_partition(result, 1000)
    assert len(result["test"]) == 200 and len(result["val"]) == 100
    test = _per_class(labels, result["test"])
    assert test["big"] == 140 and test["mid"] == 50 and 8 <= test["small"] <= 9 and 1 <= test["rare"] <= 2


def test_class_of_two_gets_one_train_one_test() -> None:
    labels = ["a"] * 100 + ["b"] * 2
    result = split_indices(labels)
    _check_partition(result, 102)
    assert _per_class(labels, result["train"])["b"] == 1
    assert _per_class(labels, result["test"])["b"] == 1
    assert _per_class(labels, result["val"])["b"] == 0


def test_class_of_two_goes_to_val_when_there_is_no_test() -> None:
    labels = ["a"] * 20 + ["b"] * 2
    result = split_indices(labels, test_fraction=0)
    assert result["test"] == []
    assert _per_class(labels, result["val"])["b"] == 1
    assert _per_class(labels, result["train"])["b"] == 1


def test_singleton_class_stays_in_train() -> None:
    labels = ["a"] * 10 + ["solo"]
    result = split_indices(labels)
    _check_partition(result, 11)
    assert labels.index("solo") in result["train"]


def test_many_tiny_classes_never_crash() -> None:
    labels = [f"class{i}" for i in range(30) for _ in range(2)]  # sklearn refuses this
    result = split_indices(labels)
    _check_partition(result, 60)
    assert _per_class(labels, result["train"]) == dict.fromkeys(set(labels), 1)
    assert _per_class(labels, result["test"]) == dict.fromkeys(set(labels), 1)


@pytest.mark.parametrize("seed", range(40))
def test_random_small_label_sets(seed: int) -> None:
    rng = random.Random(seed)
    labels = [f"c{rng.randrange(rng.randint(1, 8))}" for _ in range(rng.randint(0, 40))]
    val, test = rng.choice([0, 0.1, 0.15, 0.3]), rng.choice([0, 0.15, 0.2, 0.4])
    result = split_indices(labels, val_fraction=val, test_fraction=test, seed=seed)
    _check_partition(result, len(labels))
    counts = Counter(labels)
    train = _per_class(labels, result["train"])
    first_eval = "test" if test > 0 else "val" if val > 0 else None
    for label, n in counts.items():
        assert train[label] >= 1
        if first_eval and n >= 2:
            assert _per_class(labels, result[first_eval])[label] >= 1
    if val == 0:
        assert result["val"] == []
    if test == 0:
        assert result["test"] == []


def test_zero_fractions_keep_everything_in_train() -> None:
    result = split_indices(["a", "b", "a", "b"], val_fraction=0, test_fraction=0)
    assert result == {"train": [0, 1, 2, 3], "val": [], "test": []}


def test_empty_labels() -> None:
    assert split_indices([]) == {"train": [], "val": [], "test": []}


@pytest.mark.parametrize("kwargs", [{"val_fraction": -0.1}, {"test_fraction": 1.0},
                                    {"val_fraction": 0.5, "test_fraction": 0.5}, {"val_fraction": "0.1"}])
def test_bad_fractions(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        split_indices(["a", "b"], **kwargs)


# -- a split given by the user ---------------------------------------------------------------------


def test_given_splits_are_used_as_is() -> None:
    labels = ["a", "b", "a", "b", "a"]
    splits = ["train", "train", "validation", "test", "Train"]
    assert split_indices(labels, splits=splits) == {"train": [0, 1, 4], "val": [2], "test": [3]}


def test_missing_val_is_carved_from_train_stratified() -> None:
    labels = [c for c in "ab" for _ in range(50)] + ["a"] * 10 + ["b"] * 10
    splits = ["train"] * 100 + ["test"] * 20
    result = split_indices(labels, splits=splits, val_fraction=0.1, seed=2)
    _check_partition(result, 120)
    assert result["test"] == list(range(100, 120))  # untouched
    assert len(result["val"]) == 12  # 10% of all 120 examples
    assert _per_class(labels, result["val"]) == {"a": 6, "b": 6}
    assert all(i < 100 for i in result["val"])
    assert result == split_indices(labels, splits=splits, val_fraction=0.1, seed=2)


def test_missing_test_stays_empty() -> None:
    labels = ["a", "b"] * 10
    result = split_indices(labels, splits=["train"] * 20, val_fraction=0.2, test_fraction=0.3)
    assert result["test"] == []
    assert len(result["val"]) == 4
    assert _per_class(labels, result["val"]) == {"a": 2, "b": 2}


def test_given_splits_without_val_and_zero_fraction() -> None:
    result = split_indices(["a", "b", "a"], splits=["train", "train", "test"], val_fraction=0)
    assert result == {"train": [0, 1], "val": [], "test": [2]}


def test_given_splits_need_train() -> None:
    with pytest.raises(DataError, match="no 'train'"):
        split_indices(["a", "b"], splits=["val", "test"])


def test_given_splits_unknown_names_and_length() -> None:
    with pytest.raises(DataError, match="'holdout'"):
        split_indices(["a", "b"], splits=["train", "holdout"])
    with pytest.raises(DataError, match="1 entries for 2 labels"):
        split_indices(["a", "b"], splits=["train"])
