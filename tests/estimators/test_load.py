"""`transferkit.load` (`estimators.load`): a bundle read by the class its manifest names; an unknown kind or a
folder that is no bundle is a `BundleError`, never a guess."""

from __future__ import annotations

from pathlib import Path

import pytest

import transferkit
from transferkit.errors import BundleError
from transferkit.estimators import EnsembleClassifier, TabularTransferClassifier, TransferClassifier
from transferkit.estimators.load import estimator_class


def test_each_kind_is_read_by_its_own_class() -> None:
    assert estimator_class("probe") is TransferClassifier
    assert estimator_class("tabular") is TabularTransferClassifier
    assert estimator_class("ensemble") is EnsembleClassifier
    assert estimator_class("finetuned").__name__ == "FinetunedClassifier"
    with pytest.raises(BundleError, match="unknown kind of model 'quantum'"):
        estimator_class("quantum")


def test_a_saved_probe_loads_back_as_a_probe(image_folder: Path, tmp_path: Path) -> None:
    model = TransferClassifier("hog", progress=False).fit(image_folder)
    model.save(tmp_path / "m")
    back = transferkit.load(tmp_path / "m")
    assert type(back) is TransferClassifier
    assert back.predict([str(image_folder / "red" / "000.jpg")]).tolist() == model.predict(
        [str(image_folder / "red" / "000.jpg")]).tolist()
    with pytest.raises(BundleError):
        transferkit.load(tmp_path / "nothing-here")
