"""The in-memory labelled dataset (`data.dataset`): split names, subsets that keep what they cover, and the
check before training that every class has two readable examples."""

from __future__ import annotations

import pytest

from transferkit.data.dataset import LabelledData, canonical_split
from transferkit.errors import DataError


def test_split_names_are_canonical() -> None:
    assert [canonical_split(n) for n in ("Train", " valid ", "Validation", "TEST", "dev")] == [
        "train", "val", "val", "test", None]


def test_a_subset_keeps_its_rows_splits_groups_and_unreadable_flags() -> None:
    data = LabelledData(items=["a.jpg", "b.jpg", "c.jpg", "d.jpg"], labels=["x", "y", "x", "y"], source="s",
                        splits=["train", "train", "test", "test"], groups=["g1", "g2", "g1", "g2"],
                        unreadable={"b.jpg": "truncated", "d.jpg": "empty"})
    part = data.subset([3, 0])
    assert (part.items, part.labels, part.splits, part.groups) == (["d.jpg", "a.jpg"], ["y", "x"], ["test", "train"],
                                                                   ["g2", "g1"])
    assert part.unreadable == {"d.jpg": "empty"} and part.class_counts() == {"x": 1, "y": 1}
    with pytest.raises(DataError, match="s: 2 inputs but 1 labels"):
        LabelledData(items=["a", "b"], labels=["x"], source="s")


def test_training_needs_two_classes_of_two_readable_examples() -> None:
    with pytest.raises(DataError, match="only one class \\('x'\\)"):
        LabelledData(items=["a", "b"], labels=["x", "x"], source="s").validate_for_training()
    unreadable = LabelledData(items=["a", "b", "c", "d"], labels=["x", "x", "y", "y"], source="s",
                              unreadable={"d": "truncated"})
    with pytest.raises(DataError, match=r"too few in 'y' \(1"):  # 'd' cannot be read: one 'y' left
        unreadable.validate_for_training()
    LabelledData(items=["a", "b", "c", "d"], labels=["x", "x", "y", "y"], source="s").validate_for_training()
