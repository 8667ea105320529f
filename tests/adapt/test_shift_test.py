"""`auto`'s first question, whether the target differs at all (Failing Loudly: PCA, KS, Bonferroni)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from transferkit.adapt import auto_outcome, fit_alignment
from transferkit.adapt.shift_test import ALPHA, COMPONENTS, detect_shift
from transferkit.errors import DataError


def _domain(rng: np.random.Generator, n: int, mixing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two classes apart along the first latent dimension, skewed noise, mixed into d features."""
    y = rng.integers(0, 2, n)
    latent = rng.gamma(1.0, size=(n, mixing.shape[0]))
    latent[:, 0] += 3.0 * y
    return latent @ mixing, y


@pytest.mark.parametrize("d", [40, 300])  # 300: wider than the reduction, read through the sparse projection
def test_no_shift_is_rarely_detected_and_auto_aligns_nothing(d: int) -> None:
    rng = np.random.default_rng(d)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    source, _ = _domain(rng, 800, mixing)
    outcomes = [detect_shift(source, _domain(rng, 97, mixing)[0], seed=i) for i in range(10)]
    assert sum(t.detected for t in outcomes) <= 2  # at most 5% expected; 2 of 10 would be rare already
    assert all(t.threshold == pytest.approx(ALPHA / COMPONENTS) for t in outcomes)
    target, _ = _domain(rng, 97, mixing)
    alignment = fit_alignment(source, target, "auto")
    assert alignment is not None
    moved, why = auto_outcome(alignment)
    if not detect_shift(source, target).detected:
        assert not moved and "no shift is detected" in why and "nothing is aligned" in why


def test_offset_and_rotation_is_detected_and_auto_recovers_the_accuracy() -> None:
    rng = np.random.default_rng(3)
    d = 20
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    xs, ys = _domain(rng, 600, mixing)
    xt, yt = _domain(rng, 600, mixing)
    angle = np.radians(30)
    rotation = np.eye(d)
    rotation[[1, 1, 2, 2], [1, 2, 1, 2]] = [np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)]
    xt = xt @ rotation + 2.0  # a class-independent rotation and offset
    test = detect_shift(xs, xt[:300])
    assert test.detected and test.p_value < test.threshold
    clf = LogisticRegression(max_iter=2000).fit(xs, ys)
    plain = clf.score(xt[300:], yt[300:])
    alignment = fit_alignment(xs, xt[:300], "auto")  # fitted on one half of the target, scored on the other
    assert alignment is not None
    moved, why = auto_outcome(alignment)
    assert moved and "a shift is detected" in why
    in_domain = clf.score(*_domain(rng, 600, mixing))
    aligned = clf.score(alignment.apply(xt[300:]), yt[300:])
    assert plain < in_domain - 0.15
    assert aligned > in_domain - 0.05


def test_same_seed_same_outcome_and_bad_inputs() -> None:
    rng = np.random.default_rng(5)
    source, target = rng.normal(size=(200, 10)), rng.normal(0.3, 1.0, size=(50, 10))
    assert detect_shift(source, target, seed=2) == detect_shift(source, target, seed=2)
    with pytest.raises(DataError, match="one width"):
        detect_shift(source, target[:, :5])
    with pytest.raises(DataError, match="at least 2"):
        detect_shift(source, target[:1])
    with pytest.raises(DataError, match="constant"):
        detect_shift(np.ones((20, 4)), target[:, :4])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_auto_hands_the_test_the_source_moments_it_computed_and_the_test_is_the_same(dtype: type) -> None:
    """auto's rule computes the source's mean and spread per block; the shift test reads those instead of
    computing them again, and gives to the bit what it gives on its own."""
    rng = np.random.default_rng(8)
    source = rng.gamma(1.0, size=(150, 300)).astype(dtype)
    target = (rng.gamma(1.0, size=(40, 300)) * 1.2 + 0.1).astype(dtype)
    source[:, 5] = 1.0  # a constant source dimension: dropped by the test
    alignment = fit_alignment(source, target, "auto", blocks=[100, 200])
    assert alignment is not None
    alone = detect_shift(source, target)
    info = alignment.info
    assert info["block0_shift_p_value"] == alone.p_value and info["block0_shift_statistic"] == round(alone.statistic, 4)
    with pytest.raises(DataError, match="moments"):
        detect_shift(source, target, source_moments=(source.mean(axis=0), source.std(axis=0)[:10]))
