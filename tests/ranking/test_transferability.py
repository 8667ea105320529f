"""One contract, every estimator in ESTIMATORS: what a user of any transferability score relies on."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.errors import ConfigError, DataError, NotFittedError, check_is_fitted
from transferkit.ranking import ESTIMATORS, TransferabilityEstimator, make_estimator

NAMES = sorted(ESTIMATORS)


def score(name: str, X: np.ndarray, y: np.ndarray, to_input) -> float:
    cls = ESTIMATORS[name]
    return cls().fit(to_input(cls, X), y).score_


@pytest.mark.parametrize("name", NAMES)
def test_separable_features_outscore_random_ones(name, blobs, to_input):
    X_sep, y = blobs(60, 4, 16, separation=6.0, seed=0)
    X_rand = np.random.default_rng(1).standard_normal(X_sep.shape)
    assert ESTIMATORS[name].higher_is_better
    assert score(name, X_sep, y, to_input) > score(name, X_rand, y, to_input)


@pytest.mark.parametrize("name", NAMES)
def test_more_signal_scores_higher(name, blobs, to_input):
    weak, y = blobs(60, 4, 16, separation=2.0, seed=2)
    strong, y2 = blobs(60, 4, 16, separation=8.0, seed=2)
    assert np.array_equal(y, y2)
    assert score(name, strong, y, to_input) > score(name, weak, y, to_input)


@pytest.mark.parametrize("name", NAMES)
def test_unchanged_by_shuffling_samples_and_renaming_classes(name, blobs, to_input):
    X, y = blobs(30, 4, 12, separation=3.0, seed=3)
    cls = ESTIMATORS[name]
    reference = cls().fit(to_input(cls, X), y).score_

    rng = np.random.default_rng(4)
    order = rng.permutation(y.size)
    new_ids = np.array([2, 0, 3, 1])  # a permutation, so the sorted order of the labels changes
    renamed_int = new_ids[y][order]
    renamed_str = np.array([f"class-{'dcba'[c]}" for c in y])[order]
    for labels in (renamed_int, renamed_str):
        shuffled = cls().fit(to_input(cls, X)[order], labels).score_
        assert shuffled == pytest.approx(reference, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_float32_input_gives_a_finite_score_close_to_float64(name, blobs, to_input):
    X, y = blobs(40, 3, 10, separation=4.0, seed=5)
    cls = ESTIMATORS[name]
    s32 = cls().fit(to_input(cls, X.astype(np.float32)), y).score_
    s64 = cls().fit(to_input(cls, X), y).score_
    assert np.isfinite(s32)
    # kNN's folds depend on the exact feature bytes, so float32 may move a sample or two.
    assert s32 == pytest.approx(s64, rel=0.05, abs=0.05)


@pytest.mark.parametrize("name", NAMES)
def test_two_classes_give_a_finite_score(name, blobs, to_input):
    X, y = blobs(25, 2, 8, separation=3.0, seed=6)
    assert np.isfinite(score(name, X, y, to_input))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [0.0, 3.7])
def test_constant_features_give_a_finite_score(name, value, to_input):
    y = np.repeat(np.arange(3), 10)
    X = np.full((y.size, 6), value)
    assert np.isfinite(score(name, X, y, to_input))


@pytest.mark.parametrize("name", NAMES)
def test_some_constant_columns_do_not_hurt(name, blobs, to_input):
    X, y = blobs(40, 3, 10, separation=5.0, seed=7)
    padded = np.hstack([X, np.zeros((y.size, 3)), np.full((y.size, 2), 5.0)])
    assert np.isfinite(score(name, padded, y, to_input))


@pytest.mark.parametrize("name", NAMES)
def test_many_more_dimensions_than_samples_gives_a_finite_score(name, blobs, to_input):
    X, y = blobs(8, 4, 3000, separation=10.0, seed=8)
    assert np.isfinite(score(name, X, y, to_input))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inputs_are_not_modified(name, dtype, blobs, to_input):
    X, y = blobs(20, 3, 6, separation=3.0, seed=9)
    cls = ESTIMATORS[name]
    data = np.ascontiguousarray(to_input(cls, X.astype(dtype)))
    labels = np.array([f"c{c}" for c in y])
    data_before, labels_before = data.copy(), labels.copy()
    cls().fit(data, labels)
    assert data.dtype == dtype
    assert np.array_equal(data, data_before)
    assert np.array_equal(labels, labels_before)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_raises_data_error(name, bad, blobs, to_input):
    X, y = blobs(10, 2, 4, separation=3.0, seed=10)
    cls = ESTIMATORS[name]
    data = to_input(cls, X).copy()
    data[3, 1] = bad
    with pytest.raises(DataError, match="row 3"):
        cls().fit(data, y)


@pytest.mark.parametrize("name", NAMES)
def test_a_single_class_raises_data_error(name, blobs, to_input):
    X, _ = blobs(10, 2, 4, separation=3.0, seed=11)
    cls = ESTIMATORS[name]
    with pytest.raises(DataError, match="at least 2 classes"):
        cls().fit(to_input(cls, X), np.full(X.shape[0], "cat"))


@pytest.mark.parametrize("name", NAMES)
def test_a_class_with_one_sample_is_an_error_or_a_finite_score(name, blobs, to_input):
    X, y = blobs(10, 3, 5, separation=3.0, seed=12)
    y = y.copy()
    y[np.flatnonzero(y == 2)[1:]] = 0  # class 2 keeps one sample
    cls = ESTIMATORS[name]
    if cls.min_samples_per_class > 1:
        with pytest.raises(DataError, match="2"):
            cls().fit(to_input(cls, X), y)
    else:
        assert np.isfinite(cls().fit(to_input(cls, X), y).score_)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_shapes_raise_data_error(name, blobs, to_input):
    X, y = blobs(10, 2, 4, separation=3.0, seed=13)
    cls = ESTIMATORS[name]
    data = to_input(cls, X)
    with pytest.raises(DataError, match="labels"):
        cls().fit(data, y[:-1])
    with pytest.raises(DataError):
        cls().fit(data[None], y)


@pytest.mark.parametrize("name", NAMES)
def test_scikit_learn_contract(name, blobs, to_input):
    cls = ESTIMATORS[name]
    est = cls()
    assert isinstance(est, TransferabilityEstimator)
    assert est.get_params() == cls().get_params()  # __init__ stores its keyword defaults, nothing else
    assert not any(k.endswith("_") for k in vars(est))
    with pytest.raises(NotFittedError, match=f"{cls.__name__}.fit"):
        _ = est.score_
    with pytest.raises(NotFittedError):
        check_is_fitted(est, "score_")
    X, y = blobs(15, 2, 4, separation=3.0, seed=14)
    assert est.fit(to_input(cls, X), y) is est
    check_is_fitted(est, "score_")
    assert isinstance(est.score_, float)
    assert list(est.classes_) == [0, 1]
    assert est.fit_score(to_input(cls, X), y) == est.score_


def test_make_estimator_names_close_matches():
    assert isinstance(make_estimator("LogME"), ESTIMATORS["logme"])
    assert make_estimator("gbc", n_components=8).n_components == 8
    with pytest.raises(ConfigError, match="'logme'"):
        make_estimator("logmee")


@pytest.mark.parametrize("name", NAMES)
def test_a_failed_refit_leaves_the_estimator_unfitted(name, blobs, to_input):
    cls = ESTIMATORS[name]
    X, y = blobs(10, 2, 4, separation=3.0, seed=15)
    est = cls().fit(to_input(cls, X), y)
    with pytest.raises(DataError):
        est.fit(to_input(cls, X), np.zeros(y.size))
    with pytest.raises(NotFittedError):
        _ = est.score_
