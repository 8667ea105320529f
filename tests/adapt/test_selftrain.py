"""`adapt.selftrain`: class-balanced confident pseudo-labels and self-training on the aligned target."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from tests.adapt.conftest import shifted_problem

from transferkit.adapt import confident_pseudo_labels, fit_coral, self_train


def test_pseudo_labels_are_confident_and_class_balanced() -> None:
    proba = np.array([[0.99, 0.01], [0.95, 0.05], [0.97, 0.03], [0.2, 0.8], [0.05, 0.95]])
    index, labels = confident_pseudo_labels(proba, threshold=0.9, per_class=2)
    assert index.tolist() == [0, 2, 4] and labels.tolist() == [0, 0, 1]


def test_self_training_uses_only_target_predictions() -> None:
    xs, ys, xt, yt = shifted_problem(9)
    alignment = fit_coral(xs, xt)
    seen: list[np.ndarray] = []

    def fit(x: np.ndarray, y: np.ndarray):  # type: ignore[no-untyped-def]
        seen.append(y)
        return LogisticRegression(max_iter=1000).fit(x, y).predict_proba

    predict, report = self_train(fit, xs, ys, alignment.apply(xt))
    assert report.per_round and report.per_round[0] > 0
    assert len(seen) == 1 + len(report.per_round)
    assert (predict(alignment.apply(xt)).argmax(axis=1) == yt).mean() > 0.8
