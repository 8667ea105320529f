"""One contract over every estimator (as the ranking estimators have theirs): scikit-learn's rules,
one prediction path, and bundles that round-trip through `transferkit.load` without unpickling."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils import estimator_checks

import transferkit
from transferkit.errors import ConfigError, NotFittedError
from transferkit.estimators.ensemble import EnsembleClassifier
from transferkit.estimators.finetuned import FinetunedClassifier
from transferkit.estimators.probe import TransferClassifier
from transferkit.estimators.tabular import TabularTransferClassifier
from transferkit.estimators.transfer_estimator import TransferEstimator, estimator_kind
from transferkit.finetune.config import FinetuneConfig
from transferkit.ranking import GBC, LEEP, NCE, SFDA, HScore, KNNAccuracy, LogME

#: per estimator: non-default values for every parameter (clone must keep each), and one bad value
NON_DEFAULT: dict[type[TransferEstimator], dict[str, Any]] = {
    TransferClassifier: dict(backbone="resnet10t", weights="random", head="mlp:32", class_weight="balanced",
                             val_fraction=0.2, seed=3, batch_size=7, precision="fp32", engine="torch",
                             long_text="truncate",
                             augment=2, tta=1, cache_dir=False, strict=True, progress=False, device="cpu",
                             adapt_method="standardize", adapt_batch=True),
    TabularTransferClassifier: dict(image_columns=["img"], text_columns=["t"], audio_columns=[],
                                    numeric_columns=["x"], categorical_columns=["c"], image_backbone="resnet10t",
                                    text_backbone="minilm", audio_backbone="ge2e", head="mlp", fusion="gated",
                                    class_weight="none", val_fraction=0.25, seed=5, batch_size=9, precision="fp32",
                                    engine="onnxruntime", long_text="chunk", cache_dir=False, progress=False,
                                    device="cpu", adapt_method="coral"),
    FinetunedClassifier: dict(backbone="test_efficientnet", weights="random", head="dense:8:relu, dense:N", seed=2,
                              batch_size=4, precision="fp16", training=FinetuneConfig(epochs=3, freeze="gradual"),
                              cache_dir=None, progress=False, device="cpu", engine="openvino", run_dir="runs/x",
                              resume=True),
    EnsembleClassifier: dict(backbones=["efficientnet_lite0", "hog"], head="mlp", class_weight="none", seed=4,
                             batch_size=5, precision="fp32", engine="torch", long_text="chunk", cache_dir=False,
                             progress=False, device="cpu", adapt_method="coral", adapt_batch=True),
}
BAD: dict[type[TransferEstimator], tuple[str, Any]] = {
    EnsembleClassifier: ("backbones", ["hog"]),
    TransferClassifier: ("class_weight", "heavy"),
    TabularTransferClassifier: ("fusion", "sum"),
    FinetunedClassifier: ("precision", "fp8"),
}
ESTIMATORS = list(NON_DEFAULT)
#: the 7 ranking estimators beside the 4 classifiers: the same scikit-learn machinery for all 11
RANKING_NON_DEFAULT: dict[type[Any], dict[str, Any]] = {
    GBC: dict(n_components=8, var_floor=1e-3), HScore: dict(shrinkage=0.5), SFDA: dict(shrinkage=0.3),
    KNNAccuracy: dict(n_neighbors=3, n_splits=3, metric="euclidean"), LogME: dict(tol=1e-8, max_iter=50),
    LEEP: {}, NCE: {},
}
ALL = {**NON_DEFAULT, **RANKING_NON_DEFAULT}
#: scikit-learn's own estimator checks that apply to estimators whose fit takes images, texts or rows
SKLEARN_CHECKS = ["check_no_attributes_set_in_init", "check_parameters_default_constructible",
                  "check_get_params_invariance", "check_set_params", "check_estimator_cloneable",
                  "check_do_not_raise_errors_in_init_or_set_params"]


@pytest.mark.parametrize("cls", list(ALL), ids=lambda c: c.__name__)
def test_scikit_learn_machinery_on_all_eleven(cls: type[Any]) -> None:
    """clone keeps every parameter; scikit-learn's own `_validate_params` runs on the declared constraints;
    scikit-learn's estimator checks of the parameter contract pass."""
    params = ALL[cls]
    assert set(params) == set(cls().get_params(deep=False)), "the tables above list every parameter"
    estimator = cls(**params)
    copy = clone(estimator)
    assert copy is not estimator and copy.get_params(deep=False) == params
    cls()._validate_params()  # scikit-learn's, on our constraints: the defaults pass
    estimator._validate_params()
    assert set(cls._parameter_constraints) == set(params), "every parameter has a constraint"
    for name in SKLEARN_CHECKS:
        getattr(estimator_checks, name)(cls.__name__, cls(**params))


@pytest.mark.parametrize("cls", list(ALL), ids=lambda c: c.__name__)
def test_scikit_learn_param_validation_check(cls: type[Any]) -> None:
    """scikit-learn's `check_param_validation`: every parameter, given a bad type or value, raises its
    InvalidParameterError (ours is also a ConfigError) from fit, naming the parameter."""
    estimator_checks.check_param_validation(cls.__name__, cls(**{"progress": False} if cls in NON_DEFAULT else {}))


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_clone_keeps_every_parameter(cls: type[TransferEstimator]) -> None:
    params = NON_DEFAULT[cls]
    assert set(params) == set(cls().get_params()), "the table above lists every parameter"
    estimator = cls(**params)
    copy = clone(estimator)
    assert copy is not estimator and type(copy) is cls
    assert copy.get_params() == estimator.get_params() == params
    estimator.set_params(seed=11)
    assert estimator.seed == 11 and copy.seed == params["seed"]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_bad_parameter_is_named_when_validated(cls: type[TransferEstimator]) -> None:
    name, value = BAD[cls]
    estimator = cls(**{**NON_DEFAULT[cls], "resume": False} if cls is FinetunedClassifier else NON_DEFAULT[cls])
    estimator.set_params(**{name: value})  # __init__ and set_params store; validation is fit's (and the CLI's)
    expected = f"'{name}' parameter of {cls.__name__} must be .*Got {re.escape(repr(value))}"
    with pytest.raises(ConfigError, match=expected):
        estimator.validate()


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_use_before_fit_names_the_class(cls: type[TransferEstimator]) -> None:
    with pytest.raises(NotFittedError, match=f"This {cls.__name__} is not fitted yet"):
        cls().predict(["a"])


def _table(n: int = 36) -> tuple[list[dict[str, Any]], list[str]]:
    rng = np.random.default_rng(0)
    labels = [("low", "high")[i % 2] for i in range(n)]
    rows = [{"x": float(rng.normal(3.0 if y == "high" else -3.0)), "c": ("a", "b")[i % 3 == 0]}
            for i, y in enumerate(labels)]
    return rows, labels


def _fitted(cls: type[TransferEstimator], image_folder: Path, tmp_path: Path) -> tuple[TransferEstimator, list[Any]]:
    from transferkit.data import load_dataset

    if cls is TabularTransferClassifier:
        rows, labels = _table()
        est = TabularTransferClassifier(numeric_columns=["x"], categorical_columns=["c"], progress=False)
        return est.fit(rows, labels), rows[:5]
    data = load_dataset(image_folder)
    if cls is EnsembleClassifier:
        return EnsembleClassifier(["efficientnet_lite0", "hog"], precision="fp32", progress=False,
                                  cache_dir=tmp_path / "cache").fit(data), data.items[:5]
    if cls is TransferClassifier:
        est = TransferClassifier("test_efficientnet", weights="random", precision="fp32", progress=False,
                                 cache_dir=tmp_path / "cache")
        return est.fit(data), data.items[:5]
    est = FinetunedClassifier("test_efficientnet", weights="random", precision="fp32", batch_size=8, progress=False,
                              training=FinetuneConfig(epochs=1, input_size=32, augment=False, num_workers=0))
    return est.fit(data), data.items[:5]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_save_then_load_dispatches_on_the_manifest_and_never_unpickles(
        cls: type[TransferEstimator], image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    est, sample = _fitted(cls, image_folder, tmp_path)
    assert est.fit_report_.n_train > 0 and set(est.summary()) >= {"estimator", "modality", "n_train"}
    expected = est.predict_proba(sample)
    out = est.save(tmp_path / "bundle")
    manifest = json.loads((out / "transferkit.json").read_text())
    assert manifest["estimator"] == cls.kind == estimator_kind(manifest)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a bundle was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    loaded = transferkit.load(out, progress=False)
    assert type(loaded) is cls
    np.testing.assert_allclose(loaded.predict_proba(sample), expected, atol=1e-5)
    assert list(loaded.classes_) == list(est.classes_)
    assert loaded.score(sample, list(est.predict(sample))) == 1.0


def test_load_refuses_overrides_of_what_was_learned(image_folder: Path, tmp_path: Path) -> None:
    est, _ = _fitted(TabularTransferClassifier, image_folder, tmp_path)
    out = est.save(tmp_path / "t")
    with pytest.raises(ConfigError, match="fusion cannot be changed on a saved model"):
        transferkit.load(out, fusion="gated")


def test_older_bundles_dispatch_by_their_kind_and_strategy() -> None:
    assert estimator_kind({"strategy": "probe"}) == "probe"
    assert estimator_kind({"kind": "tabular", "strategy": "probe"}) == "tabular"
    assert estimator_kind({"strategy": "finetune"}) == "finetuned"
    assert estimator_kind({"estimator": "tabular"}) == "tabular"


@pytest.mark.parametrize("data", [Path("photos"), "photos"])
def test_a_folder_path_given_with_labels_is_named(data: str | Path) -> None:
    """A folder or table path carries its own labels: with y it is a DataError naming it (it was a TypeError for a
    Path, and a string's characters taken as inputs)."""
    from transferkit.errors import DataError

    with pytest.raises(DataError, match="'photos' is a folder or table path"):
        TransferClassifier().fit(data, ["a", "b", "c", "d", "e", "f"])
