"""LogME against its definition: the maximum of log N(y; 0, F Fᵀ/α + I/β) / N over α, β."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from transferkit.errors import ConfigError
from transferkit.ranking import LogME


def brute_force_log_evidence(F: np.ndarray, y: np.ndarray) -> float:
    """max over (α, β) of log N(y; 0, F Fᵀ/α + I/β) / N, with the N × N covariance built explicitly."""
    n = y.size

    def negative(log_params: np.ndarray) -> float:
        alpha, beta = np.exp(log_params)
        cov = F @ F.T / alpha + np.eye(n) / beta
        return -stats.multivariate_normal(np.zeros(n), cov).logpdf(y) / n

    starts = [np.array([0.0, 0.0]), np.array([3.0, 1.0]), np.array([-2.0, 3.0])]
    opts = {"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20_000}
    best = min(
        (optimize.minimize(negative, x0, method="Nelder-Mead", options=opts) for x0 in starts),
        key=lambda r: r.fun,
    )
    return -best.fun


def labelled_features(n: int, d: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    F = 0.8 * rng.standard_normal((n_classes, d))[y] + rng.standard_normal((n, d))
    return F, y


@pytest.mark.parametrize(("n", "d"), [(60, 8), (25, 70)], ids=["N>D", "N<D"])
def test_equals_brute_force_maximum_evidence(n, d):
    F, y = labelled_features(n, d, 3, seed=0)
    est = LogME().fit(F, y)
    assert est.rank_ == min(n, d)
    for c in range(3):
        expected = brute_force_log_evidence(F, (y == c).astype(float))
        assert est.evidence_per_class_[c] == pytest.approx(expected, abs=1e-8)
    assert est.score_ == pytest.approx(est.evidence_per_class_.mean())


def test_evidence_formula_uses_the_rank_when_d_exceeds_n():
    """At the fitted (α, β), the reported evidence is the exact Gaussian log density."""
    F, y = labelled_features(20, 200, 2, seed=1)
    est = LogME().fit(F, y)
    for c in range(2):
        cov = F @ F.T / est.alpha_[c] + np.eye(20) / est.beta_[c]
        exact = stats.multivariate_normal(np.zeros(20), cov).logpdf((y == c).astype(float)) / 20
        assert est.evidence_per_class_[c] == pytest.approx(exact, abs=1e-9)


@pytest.mark.parametrize(("n", "d", "extra"), [(120, 10, 40), (120, 10, 400), (40, 60, 300)])
def test_appending_pure_noise_dimensions_does_not_raise_logme(n, d, extra):
    F, y = labelled_features(n, d, 3, seed=2)
    noise = np.random.default_rng(3).standard_normal((n, extra))
    assert LogME().fit(np.hstack([F, noise]), y).score_ <= LogME().fit(F, y).score_ + 1e-9


def test_separates_signal_from_noise_when_d_exceeds_n():
    F, y = labelled_features(50, 400, 4, seed=4)
    noise = np.random.default_rng(5).standard_normal(F.shape)
    assert LogME().fit(F, y).score_ > LogME().fit(noise, y).score_


def test_invariant_to_feature_scale():
    F, y = labelled_features(80, 12, 3, seed=6)
    assert LogME().fit(1e3 * F, y).score_ == pytest.approx(LogME().fit(F, y).score_, abs=1e-8)


def test_all_zero_features_give_the_closed_form_noise_only_evidence():
    y = np.repeat([0, 1, 2], [5, 10, 15])
    est = LogME().fit(np.zeros((30, 4)), y)
    assert est.rank_ == 0
    for c, count in enumerate([5, 10, 15]):
        beta = 30 / count  # N / ‖y‖², the optimal noise precision
        expected = -0.5 * (np.log(2 * np.pi) - np.log(beta) + 1.0)
        assert est.evidence_per_class_[c] == pytest.approx(expected)


def test_iterates_to_a_tolerance():
    F, y = labelled_features(100, 10, 3, seed=7)
    loose = LogME(tol=1e-3).fit(F, y)
    tight = LogME(tol=1e-12).fit(F, y)
    assert loose.n_iter_ < tight.n_iter_
    assert loose.score_ == pytest.approx(tight.score_, abs=1e-2)
    with pytest.warns(RuntimeWarning, match="max_iter"):
        LogME(tol=1e-15, max_iter=2).fit(F, y)


@pytest.mark.parametrize("params", [{"tol": 0}, {"tol": -1.0}, {"max_iter": 0}, {"max_iter": 2.5}])
def test_bad_parameters_raise_config_error_at_fit(params):
    est = LogME(**params)  # storing is fine; fit validates
    with pytest.raises(ConfigError):
        est.fit(np.eye(4), [0, 0, 1, 1])
