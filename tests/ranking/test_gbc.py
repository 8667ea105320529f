"""GBC against its definition: −Σ_{i≠j} exp(−D_B) between diagonal class Gaussians after PCA."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.errors import ConfigError
from transferkit.ranking import GBC


@pytest.mark.parametrize("n_classes", [2, 5])
def test_identical_classes_score_near_minus_c_times_c_minus_one(n_classes):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(n_classes), 2000)
    X = rng.standard_normal((y.size, 20)) @ rng.standard_normal((20, 20))  # one distribution for all
    bound = -n_classes * (n_classes - 1)
    est = GBC(n_components=8).fit(X, y)
    assert bound <= est.score_ < 0.97 * bound


def test_separable_classes_score_near_zero():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 50)
    X = rng.standard_normal((200, 16)) + 25.0 * np.eye(4, 16)[y]
    assert -1e-6 < GBC().fit(X, y).score_ <= 0.0


def test_coefficients_follow_the_bhattacharyya_formula():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 40)
    X = rng.standard_normal((80, 3)) * [1.0, 2.0, 0.5] + np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5]])[y]
    est = GBC(n_components=3).fit(X, y)
    # Same quantity by hand, in the PCA basis (D_B is not rotation invariant for diagonal Gaussians).
    Xc = X - X.mean(axis=0)
    _, vecs = np.linalg.eigh(Xc.T @ Xc)
    Z = Xc @ vecs[:, ::-1]
    m = [Z[y == c].mean(axis=0) for c in (0, 1)]
    v = [Z[y == c].var(axis=0) for c in (0, 1)]
    avg = (v[0] + v[1]) / 2
    d_b = ((m[0] - m[1]) ** 2 / avg).sum() / 8 + 0.5 * np.log(avg / np.sqrt(v[0] * v[1])).sum()
    assert est.coefficients_[0, 1] == pytest.approx(np.exp(-d_b), rel=1e-9)
    assert est.score_ == pytest.approx(-2 * np.exp(-d_b), rel=1e-9)


def test_pca_dimension_is_capped_by_rank():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], 4)
    assert GBC(n_components=64).fit(rng.standard_normal((12, 500)), y).n_components_ == 11
    assert GBC(n_components=5).fit(rng.standard_normal((12, 500)), y).n_components_ == 5


def test_constant_features_mean_fully_overlapping_classes():
    assert GBC().fit(np.full((9, 4), 1.5), np.repeat([0, 1, 2], 3)).score_ == -6.0


def test_duplicate_samples_within_a_class_stay_finite():
    rng = np.random.default_rng(4)
    X = np.vstack([np.tile(rng.standard_normal(5), (6, 1)), rng.standard_normal((6, 5))])
    assert np.isfinite(GBC().fit(X, np.repeat([0, 1], 6)).score_)


@pytest.mark.parametrize("params", [{"n_components": 0}, {"n_components": 2.0}, {"var_floor": 0.0}])
def test_bad_parameters_raise_config_error(params):
    with pytest.raises(ConfigError):
        GBC(**params).fit(np.eye(4), [0, 0, 1, 1])
