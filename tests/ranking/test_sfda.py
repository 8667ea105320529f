"""SFDA against a literal transcription of the paper's algorithm (generalised eigenproblem, all of U)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg
from scipy.special import log_softmax, softmax

from transferkit.errors import ConfigError
from transferkit.ranking import SFDA


def _shrunk(cov: np.ndarray, lam: float) -> np.ndarray:
    out = (1.0 - lam) * cov
    out.flat[:: cov.shape[0] + 1] += lam * np.trace(cov) / cov.shape[0]
    return out


def fisher_log_proba(X: np.ndarray, y: np.ndarray, lam: float | None) -> tuple[np.ndarray, float]:
    """Step 1 of the paper: Fisher space U from (S_b, S̃_w), Gaussian discriminants in it."""
    classes = np.unique(y)
    priors = np.array([(y == c).mean() for c in classes])
    means = np.stack([X[y == c].mean(axis=0) for c in classes])
    Sw = sum(p * np.cov(X[y == c].T, bias=True) for p, c in zip(priors, classes, strict=True))
    if lam is None:
        lam = max(np.exp(-5 * np.linalg.eigvalsh(Sw)[-1]), 1e-10)
    Sw_reg = _shrunk(Sw, lam)
    Sb = _shrunk(np.cov(X.T, bias=True), lam) - Sw_reg
    _, U = linalg.eigh(Sb, Sw_reg)
    coef = means @ U @ U.T
    scores = X @ coef.T - 0.5 * np.diag(means @ coef.T) + np.log(priors)
    return log_softmax(scores, axis=1), lam


def literal_sfda(X: np.ndarray, y: np.ndarray) -> float:
    X = X.copy()
    classes = np.unique(y)
    log_p, lam = fisher_log_proba(X, y, None)
    soft = softmax(np.exp(log_p), axis=1)
    means = np.stack([X[y == c].mean(axis=0) for c in classes])
    for i, c in enumerate(classes):
        idx = np.flatnonzero(y == c)
        other = (means.sum(axis=0) - means[i]) / (len(classes) - 1)
        p = soft[idx, i][:, None]
        X[idx] = p * X[idx] + (1 - p) * other
    log_p, _ = fisher_log_proba(X, y, lam)
    return float(log_p[np.arange(y.size), np.searchsorted(classes, y)].mean())


@pytest.mark.parametrize(
    ("n", "d", "scale"),
    [(200, 10, 0.3), (200, 10, 0.05), (60, 40, 0.1), (40, 20, 1.0)],
    ids=["N>D", "N>D-strong-shrinkage", "N~D", "N~D-unit-scale"],
)
def test_equals_literal_paper_algorithm(n, d, scale):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, n)
    X = (0.8 * rng.standard_normal((4, d))[y] + rng.standard_normal((n, d))) * scale
    assert SFDA().fit(X, y).score_ == pytest.approx(literal_sfda(X, y), abs=1e-9)


def test_span_computation_for_d_above_n_equals_literal_algorithm():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 30)
    X = 0.1 * (rng.standard_normal((3, 90))[y] + rng.standard_normal((30, 90)))
    assert SFDA().fit(X, y).score_ == pytest.approx(literal_sfda(X, y), abs=1e-8)


def test_is_a_mean_log_probability():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 20)
    est = SFDA(shrinkage=0.5).fit(0.1 * rng.standard_normal((60, 5)), y)
    assert -np.log(3) - 1.0 < est.score_ <= 0.0
    assert est.shrinkage_ == 0.5


def test_constant_features_score_the_prior_entropy():
    y = np.repeat([0, 1], [10, 30])
    priors = np.array([0.25, 0.75])
    assert SFDA().fit(np.ones((40, 3)), y).score_ == pytest.approx((priors * np.log(priors)).sum())


@pytest.mark.parametrize("shrinkage", [0, 1.5, -0.1, "auto"])
def test_bad_shrinkage_raises_config_error(shrinkage):
    with pytest.raises(ConfigError, match="shrinkage"):
        SFDA(shrinkage=shrinkage).fit(np.eye(4), [0, 0, 1, 1])
