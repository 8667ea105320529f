"""NCE (negative conditional entropy) against its definition, on source labels and source-model predictions."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.ranking import NCE


def test_nce_is_zero_when_source_labels_determine_target_labels():
    y = np.repeat(np.arange(3), 5)
    source = np.array(["dog", "cat", "car"])[y]
    assert NCE().fit(source, y).score_ == pytest.approx(0.0, abs=1e-12)
    # Two source classes for one target class still determine it.
    assert NCE().fit(np.arange(15), y).score_ == pytest.approx(0.0, abs=1e-12)


def test_nce_is_minus_label_entropy_for_uninformative_source_labels():
    y = np.repeat([0, 1, 2], [5, 5, 10])
    priors = np.array([0.25, 0.25, 0.5])
    assert NCE().fit(np.zeros(20, dtype=int), y).score_ == pytest.approx((priors * np.log(priors)).sum())


def test_nce_equals_conditional_entropy_and_takes_argmax_of_probabilities():
    rng = np.random.default_rng(2)
    P = rng.dirichlet(np.ones(4), size=60)
    y = rng.integers(0, 3, 60)
    z = P.argmax(axis=1)
    expected = 0.0
    for c in range(3):
        for s in range(4):
            p_cs = np.mean((y == c) & (z == s))
            if p_cs > 0:
                expected += p_cs * np.log(p_cs / np.mean(z == s))
    assert NCE().fit(P, y).score_ == pytest.approx(expected, rel=1e-12)
    assert NCE().fit(z, y).score_ == pytest.approx(expected, rel=1e-12)
