"""The embedded demo's claim: frozen EfficientNet-Lite0 + linear head ≥ 93% on scikit-learn's digits."""

from __future__ import annotations

import pytest

from transferkit import TransferClassifier
from transferkit.commands.demo import few_per_class, write_digits
from transferkit.data import load_dataset
from transferkit.data.split import split_indices


@pytest.mark.slow
def test_digits_demo_accuracy(tmp_path) -> None:
    data = load_dataset(write_digits(tmp_path / "digits"))
    assert len(data) == 1797 and len(data.classes) == 10
    splits = split_indices(data.labels, val_fraction=0.15, test_fraction=0.15, seed=0)
    train, val, test = (data.subset(splits[s]) for s in ("train", "val", "test"))
    clf = TransferClassifier(progress=False).fit(train, X_val=val.items, y_val=val.labels)
    assert clf.evaluate(test)["accuracy"] >= 0.93


def test_few_per_class_is_balanced_and_seeded(tmp_path) -> None:
    data = load_dataset(write_digits(tmp_path / "digits"))
    picked = few_per_class(data, 3, seed=0)
    assert len(picked) == 30
    assert sorted({data.labels[i] for i in picked}) == data.classes
    assert picked == few_per_class(data, 3, seed=0) != few_per_class(data, 3, seed=1)
