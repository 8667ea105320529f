"""`EnsembleClassifier`: a probe per backbone, the ensemble's probability the mean of its members'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import transferkit
from transferkit.estimators.ensemble import EnsembleClassifier

MEMBERS = ["test_efficientnet@random", "hog"]


@pytest.fixture(scope="module")
def ensemble(image_folder: Path) -> EnsembleClassifier:
    return EnsembleClassifier(MEMBERS, precision="fp32", progress=False).fit(str(image_folder))


def test_the_probability_is_the_mean_of_the_members(ensemble: EnsembleClassifier, image_folder: Path) -> None:
    inputs = [str(p) for p in sorted(image_folder.glob("*/00[0-2].jpg"))]
    members = [m.predict_proba(inputs) for m in ensemble.members_]
    assert [m.backbone_.name for m in ensemble.members_] == ["test_efficientnet", "hog"]
    assert not np.allclose(members[0], members[1])  # two different probes, so the mean is not either one
    assert np.allclose(ensemble.predict_proba(inputs), np.mean(members, axis=0), atol=1e-6)
    assert list(ensemble.classes_) == list(ensemble.members_[0].classes_)
    summary = ensemble.summary()
    assert summary["members"] == ["test_efficientnet", "hog"]


def test_a_saved_ensemble_predicts_the_same(ensemble: EnsembleClassifier, image_folder: Path, tmp_path: Path) -> None:
    inputs = [str(p) for p in sorted(image_folder.glob("*/001.jpg"))]
    ensemble.save(tmp_path / "model")
    loaded = transferkit.load(tmp_path / "model")
    assert isinstance(loaded, EnsembleClassifier) and len(loaded.members_) == 2
    assert np.allclose(loaded.predict_proba(inputs), ensemble.predict_proba(inputs), atol=1e-5)


def test_an_ensemble_fitted_with_a_target_says_how_its_members_adapted(image_folder: Path) -> None:
    """Each member aligns its own features; the summary gives the first member's record, flat, and says so."""
    target = [str(p) for p in sorted(image_folder.glob("*/*.jpg"))]
    adapted = EnsembleClassifier(MEMBERS, precision="fp32", progress=False, adapt_method="standardize").fit(
        str(image_folder), X_target=target)
    record = adapted.summary()["adaptation"]
    assert record["members"] == "each member aligned its own features"
    assert record["applied"] == "standardize" and record["target_inputs"] == len(target)
    assert "statistics" not in record and "source_inputs" in record  # the alignment's numbers sit flat beside
