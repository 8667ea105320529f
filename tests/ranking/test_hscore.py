"""H-score against its definition tr(Σ_f⁻¹ Σ_g), plain and Ledoit–Wolf regularised."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf

from transferkit.errors import ConfigError
from transferkit.ranking import HScore
from transferkit.ranking.hscore import ledoit_wolf_shrinkage


def class_mean_covariance(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cov of g(x) = E[f | y(x)]: every sample replaced by its class mean."""
    g = np.empty_like(X)
    for c in np.unique(y):
        g[y == c] = X[y == c].mean(axis=0)
    return np.cov(g, rowvar=False, bias=True)


def features(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    X = 0.5 * rng.standard_normal((4, d))[y] + rng.standard_normal((n, d)) * np.linspace(0.1, 3.0, d)
    return X, y


@pytest.mark.parametrize(("n", "d"), [(200, 10), (50, 300)], ids=["N>D", "N<D"])
def test_shrinkage_equals_scikit_learn_ledoit_wolf(n, d):
    X, _ = features(n, d, seed=0)
    _, expected = ledoit_wolf(X)
    assert ledoit_wolf_shrinkage(X - X.mean(axis=0)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("n", "d"), [(200, 10), (50, 300)], ids=["N>D", "N<D"])
def test_regularised_score_equals_definition(n, d):
    X, y = features(n, d, seed=1)
    cov_f, alpha = ledoit_wolf(X)
    expected = np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ ((1 - alpha) * class_mean_covariance(X, y)))
    est = HScore().fit(X, y)
    assert est.shrinkage_ == pytest.approx(alpha)
    assert est.score_ == pytest.approx(expected, rel=1e-8)


def test_zero_shrinkage_is_the_plain_h_score():
    X, y = features(300, 8, seed=2)
    expected = np.trace(np.linalg.pinv(np.cov(X, rowvar=False, bias=True)) @ class_mean_covariance(X, y))
    assert HScore(shrinkage=0.0).fit(X, y).score_ == pytest.approx(expected, rel=1e-8)


def test_plain_form_saturates_when_d_reaches_n_but_regularised_form_does_not():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 15)
    signal = 2.0 * rng.standard_normal((4, 100))[y] + rng.standard_normal((60, 100))
    noise = rng.standard_normal((60, 100))
    plain = [HScore(shrinkage=0.0).fit(X, y).score_ for X in (signal, noise)]
    assert plain == pytest.approx([3.0, 3.0])  # C − 1 for both: no ranking possible
    assert HScore().fit(signal, y).score_ > 2 * HScore().fit(noise, y).score_


def test_constant_features_score_zero():
    assert HScore().fit(np.full((12, 3), 2.0), np.repeat([0, 1, 2], 4)).score_ == 0.0


@pytest.mark.parametrize("shrinkage", [-0.5, 2.0, "lw"])
def test_bad_shrinkage_raises_config_error(shrinkage):
    with pytest.raises(ConfigError, match="shrinkage"):
        HScore(shrinkage=shrinkage).fit(np.eye(4), [0, 0, 1, 1])
