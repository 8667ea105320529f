"""LEEP against its definition, on source-model predictions."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.errors import DataError
from transferkit.ranking import LEEP


def leep_by_definition(P: np.ndarray, y: np.ndarray) -> float:
    """The paper's three sums, written as loops (source classes nobody predicts add nothing)."""
    n, n_source = P.shape
    classes = list(np.unique(y))
    joint = np.array([[P[y == c, z].sum() / n for z in range(n_source)] for c in classes])
    marginal = joint.sum(axis=0)
    total = 0.0
    for i in range(n):
        c = classes.index(y[i])
        total += np.log(sum(joint[c, z] / marginal[z] * P[i, z] for z in range(n_source) if marginal[z] > 0))
    return total / n


@pytest.mark.parametrize("n_classes", [2, 5])
def test_leep_is_zero_for_perfect_predictions(n_classes):
    y = np.repeat(np.arange(n_classes), 7)
    perfect = np.eye(n_classes)[(y + 1) % n_classes]  # a relabelling of the target classes
    assert LEEP().fit(perfect, y).score_ == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n_classes", [2, 5])
def test_leep_is_log_one_over_c_for_uniform_predictions(n_classes):
    y = np.repeat(np.arange(n_classes), 6)
    uniform = np.full((y.size, 10), 0.1)
    assert LEEP().fit(uniform, y).score_ == pytest.approx(np.log(1 / n_classes))


def test_leep_for_uniform_predictions_with_unbalanced_classes_is_minus_label_entropy():
    y = np.repeat([0, 1], [10, 30])
    priors = np.array([0.25, 0.75])
    assert LEEP().fit(np.full((40, 3), 1 / 3), y).score_ == pytest.approx((priors * np.log(priors)).sum())


def test_leep_equals_definition_on_random_predictions():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.full(6, 0.5), size=50)
    P[:, 5] = 0.0  # a source class nobody predicts
    P /= P.sum(axis=1, keepdims=True)
    y = rng.integers(0, 3, 50)
    assert LEEP().fit(P, y).score_ == pytest.approx(leep_by_definition(P, y), rel=1e-12)


def test_leep_rejects_logits_with_a_hint():
    logits = np.random.default_rng(1).standard_normal((10, 4))
    with pytest.raises(DataError, match="softmax"):
        LEEP().fit(logits, np.repeat([0, 1], 5))


