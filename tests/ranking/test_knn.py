"""kNN accuracy against scikit-learn's pipeline on the same folds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import PredefinedSplit, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from transferkit.errors import ConfigError
from transferkit.ranking import KNNAccuracy


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_equals_scikit_learn_on_the_same_folds(metric, blobs):
    X, y = blobs(50, 2, 6, separation=2.0, seed=0)  # two classes, odd k: no vote ties
    est = KNNAccuracy(n_neighbors=5, metric=metric).fit(X, y)
    steps = [StandardScaler()] + ([Normalizer()] if metric == "cosine" else [])
    model = make_pipeline(*steps, KNeighborsClassifier(n_neighbors=5, algorithm="brute"))
    expected = cross_val_predict(model, X, y, cv=PredefinedSplit(est.folds_))
    assert np.array_equal(est.predictions_, expected)
    assert est.score_ == pytest.approx(np.mean(expected == y))


def test_folds_are_stratified(blobs):
    X, y = blobs(23, 3, 4, separation=1.0, seed=1)
    folds = KNNAccuracy(n_splits=5).fit(X, y).folds_
    for c in range(3):
        counts = np.bincount(folds[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_accuracy_is_one_for_separated_classes_and_near_chance_for_noise(blobs):
    X, y = blobs(40, 4, 8, separation=30.0, seed=2)
    assert KNNAccuracy().fit(X, y).score_ == 1.0
    noise = np.random.default_rng(3).standard_normal(X.shape)
    assert KNNAccuracy().fit(noise, y).score_ < 0.45


def test_ties_go_to_the_class_with_the_nearest_neighbour():
    # Held-out point 0.0 has neighbours at 0.1 (class b) and 0.2 (class a): one vote each.
    from transferkit.ranking.knn import knn_predict

    train = np.array([[0.2], [0.1], [5.0]])
    predicted = knn_predict(train, np.array([0, 1, 0]), np.array([[0.0]]), 2, k=2, metric="euclidean")
    assert predicted.tolist() == [1]


@pytest.mark.parametrize("params", [{"n_neighbors": 0}, {"n_splits": 1}, {"metric": "manhattan"}])
def test_bad_parameters_raise_config_error(params):
    with pytest.raises(ConfigError):
        KNNAccuracy(**params).fit(np.eye(4), [0, 0, 1, 1])
